"""The time loop shared by every recurrent cell: forward over a sequence, and full or
truncated backpropagation through time (BPTT).

Sequences are time-major: ``xs`` is ``(T, B, I)``. With the cell's step (``xpnn.nn.cells``)
and ``h_{-1} = h0`` (zeros unless given)::

    ux = xs @ W_in (+ b)                           all T * B rows, every gate, one matmul
    state_t, h_t = cell(ux_t, state_{t-1})         the only per-step work
    y = g(h @ W_out (+ b_out))                     all rows at once (only h_{T-1} if many-to-one)

Backward runs ``for t in reversed(range(T))``: the gradient reaching ``h_t`` from the output
layer plus the one carried back from step ``t + 1`` goes through the cell's
``step_backward``, which returns the gradients at the step's input and recurrent
projections. The weight gradients are then one matmul each over all rows::

    dW_in = X.T @ D_in        dW = H_prev.T @ D_rec        dW_out = H.T @ Delta_out
    db = sum(D_in)            db_h = sum(D_rec)            db_out = sum(Delta_out)

Truncated BPTT (``truncate=k``) cuts the time axis into blocks of ``k`` steps from the
start; gradients do not flow from one block into the previous one. It is the exact
gradient of the loss in which each block's incoming state is a constant, which is how
``gradient_check`` verifies it. ``truncate >= T`` is full BPTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xpnn.backends import Array, ArrayNamespace
from xpnn.nn.cells import Cell, State
from xpnn.nn.losses import OutputLayer


@dataclass(frozen=True)
class RNNCache:
    """What ``backward`` needs from ``forward``.

    ``xs`` ``(T, B, I)``; ``h0`` the initial state or None for zeros; ``hs`` the outputs
    ``h_t`` of the ``T`` steps, each ``(B, H)``; ``states`` the state after each step
    (``hs`` itself, or the pairs ``(h_t, c_t)`` of the LSTM); ``steps`` the cell's
    per-step caches; ``v`` and ``y`` the output pre-activation and output, ``(T, B, O)``
    or ``(B, O)`` if many-to-one.
    """

    params: dict[str, Array]
    xs: Array
    h0: State
    hs: list[Array]
    states: list[State]
    steps: list[tuple]
    v: Array
    y: Array


def forward(
    cell: Cell,
    out: OutputLayer,
    xs: Array,
    params: Mapping[str, Array],
    h0: State,
    *,
    many_to_one: bool,
    xp: ArrayNamespace,
) -> tuple[Array, RNNCache]:
    """``(y, cache)`` for ``xs`` ``(T, B, I)`` from the initial state ``h0`` (None: zeros)."""
    # Operators (``@``, ``.T``) rather than ``xp.matmul``: the same standard operation,
    # without a wrapper's Python call, which at batch 1 costs more than the arithmetic.
    steps, batch, _ = xs.shape
    ux = xs @ params["W_in"]  # every step's input projection: (T, B, I) @ (I, G*H)
    if "b" in params:
        ux = ux + params["b"]
    hs, states, caches = [], [], []
    state = h0
    for t in range(steps):
        state, h, step_cache = cell.step_forward(ux[t, ...], state, params, xp)
        hs.append(h)
        states.append(state)
        caches.append(step_cache)
    w_out = params["W_out"]
    if many_to_one:
        v = hs[-1] @ w_out
    else:  # the output layer over all T * B rows at once
        v = xp.reshape(xp.concat(hs, axis=0) @ w_out, (steps, batch, w_out.shape[1]))
    if "b_out" in params:
        v = v + params["b_out"]
    y = out.forward(v, xp)
    return y, RNNCache(dict(params), xs, h0, hs, states, caches, v, y)


def backward(
    cell: Cell,
    out: OutputLayer,
    cache: RNNCache,
    ds: Array,
    truncate: int | None,
    *,
    many_to_one: bool,
    xp: ArrayNamespace,
) -> dict[str, Array]:
    """The gradient of every parameter in ``cache.params`` for targets ``ds`` (floating,
    shaped like ``cache.y``), by full BPTT or truncated over blocks of ``truncate``."""
    params = cache.params
    steps, batch, inputs = cache.xs.shape
    rows = steps * batch
    w_out = params["W_out"]
    # Per-step arrays are joined into (T * B, .) rows, step t in rows t*B .. (t+1)*B - 1.
    h_rows = xp.concat(cache.hs, axis=0)
    delta_out = out.delta(cache.v, cache.y, ds, xp)  # dE/dv
    grads: dict[str, Array] = {}
    if many_to_one:  # the output, and its delta, exist at the last step only
        grads["W_out"] = cache.hs[-1].T @ delta_out
        dh_last = delta_out @ w_out.T
    else:
        delta_out = xp.reshape(delta_out, (rows, w_out.shape[1]))
        grads["W_out"] = h_rows.T @ delta_out
        dh_out = delta_out @ w_out.T  # dE/dh_t from the output, (T * B, H)
    if "b_out" in params:
        grads["b_out"] = xp.sum(delta_out, axis=0)

    w_t = params["W"].T
    block = truncate or steps
    d_in: list[Array] = [None] * steps
    d_rec: list[Array] = [None] * steps
    step_caches = cell.prepare_backward(cache.steps, xp)
    carry = None  # the gradient reaching state_t from step t + 1
    for t in range(steps - 1, -1, -1):
        if many_to_one:
            dh = dh_last if t == steps - 1 else None
        else:
            dh = dh_out[t * batch : (t + 1) * batch, ...]
        if dh is None and carry is None:  # many-to-one, before the last block
            # zeros of the last step's shape, dtype and device (the last step always has
            # a gradient, and is done first)
            d_in[t] = d_rec[t] = xp.zeros_like(d_in[steps - 1])
            continue
        d_in[t], d_rec[t], carry = cell.step_backward(
            dh, carry, step_caches[t], w_t, xp, t % block != 0
        )

    x_rows = xp.reshape(cache.xs, (rows, inputs))
    d_in_rows = xp.concat(d_in, axis=0)
    d_rec_rows = xp.concat(d_rec, axis=0) if cell.separate_recurrent_delta else d_in_rows
    grads["W_in"] = x_rows.T @ d_in_rows
    # sum over t >= 1 of h_{t-1}.T @ d_rec_t: rows of h_0 .. h_{T-2} against d_rec_1 ..
    grads["W"] = h_rows[: rows - batch, ...].T @ d_rec_rows[batch:, ...]
    if cache.h0 is not None:
        h0 = cache.h0[0] if cell.paired_state else cache.h0
        grads["W"] = grads["W"] + h0.T @ d_rec[0]
    if "b" in params:
        grads["b"] = xp.sum(d_in_rows, axis=0)
    if "b_h" in params:
        grads["b_h"] = xp.sum(d_rec_rows, axis=0)
    return grads
