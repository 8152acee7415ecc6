"""The time loop shared by every recurrent cell: forward over a sequence, and full or
truncated backpropagation through time (BPTT).

Sequences are time-major: ``xs`` is ``(T, B, I)``. With the cell's step (``xpnn.nn.cells``)
and ``h_{-1} = h0`` (zeros unless given)::

    ux = xs @ W_in (+ b)                           all T * B rows, every gate, one matmul
    state_t, h_t = cell(ux_t, state_{t-1})         the only per-step work
    y = g(h @ W_out (+ b_out))                     all rows at once (only h_{T-1} if many-to-one)

Both time loops run through the backend's ``scan`` (``Backend.scan``, handed down by the
model): a Python loop on every backend but a traced JAX step, where it is
``jax.lax.scan`` (compiled once whatever ``T``). Backward runs the steps in reverse: the
gradient reaching ``h_t`` from the output layer plus the one carried back from step
``t + 1`` goes through the cell's ``step_backward``, which returns the gradients at the
step's input and recurrent projections and the one it carries on to step ``t - 1``. The
weight gradients are then one matmul each over all rows::

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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xpnn.backends import Array, ArrayNamespace
from xpnn.nn.cells import Cell, State
from xpnn.nn.losses import OutputLayer

Scan = Callable[..., tuple[Any, Any]]
"""A backend's ``scan`` (``xpnn.backends.Backend.scan``)."""


@dataclass(frozen=True)
class RNNCache:
    """What ``backward`` needs from ``forward``.

    ``xs`` ``(T, B, I)``; ``h0`` the initial state or None for zeros; ``hs`` the outputs
    ``h_t`` of the ``T`` steps stacked, ``(T, B, H)``; ``state_stack`` the state after each
    step stacked the same way (``hs`` itself, or the pair ``(hs, cs)`` of the LSTM);
    ``steps`` the cell's per-step caches (what it needs beyond the states), each field
    stacked ``(T, B, ...)``; ``v`` and ``y`` the output pre-activation and output,
    ``(T, B, O)`` or ``(B, O)`` if many-to-one; ``zeros`` a state of zeros (what enters
    the end of every backward block from later).
    """

    params: dict[str, Array]
    xs: Array
    h0: State
    hs: Array
    state_stack: State
    steps: tuple
    v: Array
    y: Array
    zeros: State

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
    device: Any,
    scan: Scan,
) -> tuple[Array, RNNCache]:
    """``(y, cache)`` for ``xs`` ``(T, B, I)`` from the initial state ``h0`` (None: zeros,
    on ``device``)."""
    # Operators (``@``, ``.T``) rather than ``xp.matmul``: the same standard operation,
    # without a wrapper's Python call, which at batch 1 costs more than the arithmetic.
    ux = xs @ params["W_in"]  # every step's input projection: (T, B, I) @ (I, G*H)
    if "b" in params:
        ux = ux + params["b"]
    if isinstance(h0, list):  # the LSTM's pair, as the tuple the cell returns
        h0 = tuple(h0)
    step = functools.partial(cell.step_forward, cell.prepare_forward(params, xp), xp)
    zeros = cell.zero_state(ux[0, :, : params["W"].shape[0]], xp, device)  # (B, H)
    _, (states, caches) = scan(step, zeros if h0 is None else h0, ux)
    hs = states[0] if cell.paired_state else states
    w_out = params["W_out"]
    # the output layer: (B, H) @ (H, O), or every step's (T, B, H) @ (H, O) in one call
    v = (hs[-1, ...] if many_to_one else hs) @ w_out
    if "b_out" in params:
        v = v + params["b_out"]
    y = out.forward(v, xp)
    return y, RNNCache(dict(params), xs, h0, hs, states, caches, v, y, zeros)


def backward(
    cell: Cell,
    out: OutputLayer,
    cache: RNNCache,
    ds: Array,
    truncate: int | None,
    *,
    many_to_one: bool,
    xp: ArrayNamespace,
    scan: Scan,
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
    dh_out = None  # dE/dh_t from the output, (T, B, H); many-to-one: at the last step only
    if many_to_one:
        grads["W_out"] = cache.hs[-1, ...].T @ delta_out
        dh_last = delta_out @ w_out.T
    else:
        dh_out = delta_out @ w_out.T  # (T, B, O) @ (O, H)
        delta_out = xp.reshape(delta_out, (rows, w_out.shape[1]))
        grads["W_out"] = h_rows.T @ delta_out
    if "b_out" in params:
        grads["b_out"] = xp.sum(delta_out, axis=0)

    step = functools.partial(cell.step_backward, params["W"].T, xp)
    prepared = cell.prepare_backward(cache.steps, cache.state_stack, cache.h0, xp)
    zeros = cache.zeros  # nothing enters a block from later

    def block(xs: tuple, dh_end: State) -> Any:
        """The deltas of one block's ``(dh_out, step_caches)``, ``dh_end`` entering its
        last step from later."""
        return scan(step, dh_end, xs, reverse=True)[1]

    size = truncate or steps
    last = (steps - 1) // size * size  # where the last block starts
    xs = (dh_out, *prepared)
    end = _with_h(zeros, dh_last) if many_to_one else zeros
    deltas = block(_tree(lambda a: a[last:, ...], xs) if last else xs, end)
    if last:  # the blocks before the last
        if many_to_one:  # no gradient reaches them
            before = _tree(lambda a: xp.zeros_like(a[:1, ...]), deltas)
            before = _tree(lambda a: xp.broadcast_to(a, (last, *a.shape[1:])), before)
        else:  # one scan over the blocks, each a scan over its steps: on JAX one compile
            count = last // size  # whatever T; elsewhere a loop over the blocks
            by_block = _tree(lambda a: xp.reshape(a[:last, ...], (count, size, *a.shape[1:])), xs)
            _, before = scan(lambda _, x: (None, block(x, zeros)), None, by_block)
            before = _tree(lambda a: xp.reshape(a, (last, *a.shape[2:])), before)
        deltas = _tree(lambda a, b: xp.concat([a, b], axis=0), before, deltas)
    separate = cell.separate_recurrent_delta
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


def _with_h(state: State, dh: Array) -> State:
    """``state`` (a gradient carry of zeros) with its ``h`` part replaced by ``dh``."""
    return (dh, *state[1:]) if isinstance(state, tuple) else dh


def _tree(fn: Callable[..., Array], tree: Any, *rest: Any) -> Any:
    """``fn`` applied to the arrays of ``tree`` (and the matching ones of ``rest``), in a
    tree of its structure: a tuple, None or an array."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return tuple(_tree(fn, *items) for items in zip(tree, *rest, strict=True))
    return fn(tree, *rest)
