"""The time loop shared by every recurrent cell: forward over a sequence, and full or
truncated backpropagation through time (BPTT).

Sequences are time-major: ``xs`` is ``(T, B, I)``. With the cell's step (``xpnn.nn.cells``)
and ``h_{-1} = h0`` (zeros unless given)::

    ux = xs @ W_in (+ b)                           all T * B rows, every gate, one matmul
    state_t, h_t = cell(ux_t, state_{t-1})         the only per-step work
    y = g(h @ W_out (+ b_out))                     all rows at once (only h_{T-1} if many-to-one)

Both time loops run through ``xpnn.backends.scan``: a Python loop on every backend but a
traced JAX step, where it is ``jax.lax.scan`` (compiled once whatever ``T``). Backward runs
the steps in reverse: the gradient reaching ``h_t`` from the output layer plus the one
carried back from step ``t + 1`` goes through the cell's ``step_backward``, which returns
the gradients at the step's input and recurrent projections. The weight gradients are
then one matmul each over all rows::

    dW_in = X.T @ D_in        dW = H_prev.T @ D_rec        dW_out = H.T @ Delta_out
    db = sum(D_in)            db_h = sum(D_rec)            db_out = sum(Delta_out)

Truncated BPTT (``truncate=k``) cuts the time axis into blocks of ``k`` steps from the
start; gradients do not flow from one block into the previous one, so the whole blocks
run as one scan over the blocks, each a scan over its steps (on JAX, a compile that does
not grow with ``T``), and the last, possibly shorter, block by itself. It is the exact
gradient of the loss in which each block's incoming state is a constant, which is how
``gradient_check`` verifies it. ``truncate >= T`` is full BPTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xpnn.backends import Array, ArrayNamespace
from xpnn.backends.scan import scan, tree_map
from xpnn.nn.cells import Cell, State
from xpnn.nn.losses import OutputLayer


@dataclass(frozen=True)
class RNNCache:
    """What ``backward`` needs from ``forward``.

    ``xs`` ``(T, B, I)``; ``h0`` the initial state or None for zeros; ``hs`` the outputs
    ``h_t`` of the ``T`` steps stacked, ``(T, B, H)``; ``state_stack`` the state after each
    step stacked the same way (``hs`` itself, or the pair ``(hs, cs)`` of the LSTM);
    ``steps`` the cell's per-step caches (what it needs beyond the states), each field
    stacked ``(T, B, ...)``; ``v`` and ``y`` the output pre-activation and output,
    ``(T, B, O)`` or ``(B, O)`` if many-to-one.
    """

    params: dict[str, Array]
    xs: Array
    h0: State
    hs: Array
    state_stack: State
    steps: tuple
    v: Array
    y: Array

    def state_at(self, t: int) -> State:
        """The state after step ``t`` (``-1``: the last), ``(B, H)`` or the LSTM's pair."""
        if isinstance(self.state_stack, tuple):
            return tuple(a[t, ...] for a in self.state_stack)
        return self.state_stack[t, ...]

    @property
    def states(self) -> list[State]:
        """The state after each step, ``states[t]`` as ``state_at(t)``."""
        return [self.state_at(t) for t in range(self.hs.shape[0])]


def forward(
    cell: Cell,
    out: OutputLayer,
    xs: Array,
    params: Mapping[str, Array],
    h0: State,
    *,
    many_to_one: bool,
    xp: ArrayNamespace,
    backend: str,
) -> tuple[Array, RNNCache]:
    """``(y, cache)`` for ``xs`` ``(T, B, I)`` from the initial state ``h0`` (None: zeros).
    ``backend`` is the backend's name, for ``scan`` (a string, never worked out from
    ``xp`` inside a step that ``torch.compile`` traces)."""
    # Operators (``@``, ``.T``) rather than ``xp.matmul``: the same standard operation,
    # without a wrapper's Python call, which at batch 1 costs more than the arithmetic.
    steps, batch, _ = xs.shape
    ux = xs @ params["W_in"]  # every step's input projection: (T, B, I) @ (I, G*H)
    if "b" in params:
        ux = ux + params["b"]
    if isinstance(h0, list):  # the LSTM's pair, as the tuple the cell returns
        h0 = tuple(h0)

    step_params = cell.prepare_forward(params, xp)

    def step(state: State, ux_t: Array) -> tuple[State, tuple]:
        state, _h, step_cache = cell.step_forward(ux_t, state, step_params, xp)
        return state, (state, step_cache)

    _, (states, caches) = scan(step, h0, ux, backend=backend)
    hs = states[0] if cell.paired_state else states
    w_out = params["W_out"]
    if many_to_one:
        v = hs[-1, ...] @ w_out
    else:  # the output layer over all T * B rows at once
        rows = xp.reshape(hs, (steps * batch, hs.shape[2]))
        v = xp.reshape(rows @ w_out, (steps, batch, w_out.shape[1]))
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
    backend: str,
) -> dict[str, Array]:
    """The gradient of every parameter in ``cache.params`` for targets ``ds`` (floating,
    shaped like ``cache.y``), by full BPTT or truncated over blocks of ``truncate``."""
    params = cache.params
    steps, batch, inputs = cache.xs.shape
    rows = steps * batch
    w_out = params["W_out"]
    # Stacked per-step arrays read as (T * B, .) rows, step t in rows t*B .. (t+1)*B - 1.
    h_rows = xp.reshape(cache.hs, (rows, cache.hs.shape[2]))
    delta_out = out.delta(cache.v, cache.y, ds, xp)  # dE/dv
    grads: dict[str, Array] = {}
    dh_out = None
    if many_to_one:  # the output, and its delta, exist at the last step only
        grads["W_out"] = cache.hs[-1, ...].T @ delta_out
        dh_last = delta_out @ w_out.T
    else:
        delta_out = xp.reshape(delta_out, (rows, w_out.shape[1]))
        grads["W_out"] = h_rows.T @ delta_out
        dh_out = xp.reshape(delta_out @ w_out.T, cache.hs.shape)  # dE/dh_t from the output
    if "b_out" in params:
        grads["b_out"] = xp.sum(delta_out, axis=0)

    w_t = params["W"].T
    step_caches = cell.prepare_backward(cache.steps, cache.state_stack, cache.h0, xp)
    separate = cell.separate_recurrent_delta

    def step(pending: Any, x: tuple) -> tuple[Any, Any]:
        dh, step_cache = x
        if dh is None:  # many-to-one: the output's gradient enters at the last step
            dh = dh_last if pending is None else None
        d_in, d_rec, pending = cell.step_backward(dh, pending, step_cache, w_t, xp)
        return pending, ((d_in, d_rec) if separate else d_in)

    def block(xs: tuple) -> Any:
        """The deltas of one block's ``(dh_out, step_caches)``, no gradient entering from
        later steps."""
        return scan(step, None, xs, reverse=True, backend=backend)[1]

    size = truncate or steps
    last = (steps - 1) // size * size  # where the last block starts

    def whole_blocks(xs: tuple, count: int) -> Any:
        """The deltas of ``xs``, ``count`` blocks of ``size`` steps: one scan over the
        blocks, each a scan over its steps (on JAX one compile whatever ``T``; elsewhere a
        loop over the blocks, the numbers of one ``block`` call each)."""
        by_block = tree_map(lambda a: xp.reshape(a, (count, size, *a.shape[1:])), xs)
        _, deltas = scan(lambda _, x: (None, block(x)), None, by_block, backend=backend)
        return tree_map(lambda a: xp.reshape(a, (count * size, *a.shape[2:])), deltas)

    xs = (dh_out, step_caches)
    deltas = block(tree_map(lambda a: a[last:, ...], xs) if last else xs)
    if last:  # the blocks before the last
        if many_to_one:  # no gradient reaches them
            zeros = tree_map(lambda a: xp.zeros_like(a[:1, ...]), deltas)
            before = tree_map(lambda a: xp.broadcast_to(a, (last, *a.shape[1:])), zeros)
        else:
            before = whole_blocks(tree_map(lambda a: a[:last, ...], xs), last // size)
        deltas = tree_map(lambda *a: xp.concat(a, axis=0), before, deltas)
    d_in, d_rec = deltas if separate else (deltas, deltas)

    width = d_in.shape[2]
    x_rows = xp.reshape(cache.xs, (rows, inputs))
    d_in_rows = xp.reshape(d_in, (rows, width))
    d_rec_rows = xp.reshape(d_rec, (rows, width)) if separate else d_in_rows
    grads["W_in"] = x_rows.T @ d_in_rows
    # sum over t >= 1 of h_{t-1}.T @ d_rec_t: rows of h_0 .. h_{T-2} against d_rec_1 ..
    grads["W"] = h_rows[: rows - batch, ...].T @ d_rec_rows[batch:, ...]
    if cache.h0 is not None:
        h0 = cache.h0[0] if cell.paired_state else cache.h0
        grads["W"] = grads["W"] + h0.T @ d_rec[0, ...]
    if "b" in params:
        grads["b"] = xp.sum(d_in_rows, axis=0)
    if "b_h" in params:
        grads["b_h"] = xp.sum(d_rec_rows, axis=0)
    return grads
