"""Recurrent cells: one time step forward and one time step backward.

A cell knows its gate count ``G`` and its own arithmetic; the time loop lives in
``xpnn.nn.recurrent``. Every cell has the parameters ``W_in`` ``(I, G*H)`` and ``W``
``(H, G*H)``, with the gates side by side along the columns in PyTorch's order, and with
biases ``b`` ``(G*H,)`` (the GRU also ``b_h`` ``(G*H,)``). The driver computes the input
projection ``ux_t = x_t @ W_in (+ b)`` of every step in one matmul before the loop and
hands the cell one ``(B, G*H)`` row block per step.

``zero_state(like, xp, device)`` is the state before step 0 (zeros of the ``(B, H)``
array ``like``'s shape and dtype, on ``device``), shaped like every state and like the
gradient that flows back into one: ``(B, H)``, or the LSTM's pair.

The two steps have the shape of the backend's ``scan`` step, ``carry, y = step(carry,
x)``, once the constants in front are bound (``functools.partial``), so the driver's loop
calls the cell directly:

``step_forward(params, xp, state, ux)`` returns ``(state, (state, cache))``: the new state
(its ``h`` is what the output layer reads), carried on and also stacked, and what
``step_backward`` needs beyond the states (nothing is stored on the cell). ``params`` is
what ``prepare_forward(params, xp)`` returned: the parameters, plus any constant the
cell builds once per sequence rather than once per step (the LSTM's gate scales). The
driver stacks the states of every step anyway, so a cache never holds a state again: a
copy of each field of every step is what the stacking costs at large batches.

Before the backward loop, ``prepare_backward(caches, states, state0, xp)`` turns the
caches of all steps (each field stacked on a leading time axis, ``(T, B, ...)``), the
stacked states after each step (``(T, B, H)``, or the LSTM's pair) and the initial state
``state0`` (None for zeros) into a tuple of ``(T, B, ...)`` arrays: whatever does not
depend on the incoming gradient (gate derivatives and the like), computed over all
``T * B`` rows at once. At small sizes the cost is the number of array calls, so the
per-step work shrinks to a few of them.

``step_backward(w_t, xp, dh_next, (dh, *prepared))`` takes ``dh_next``, the gradient
reaching the step's state from step ``t + 1`` (zeros at the end of a truncation block;
the LSTM's pair ``(dh, dc)``), ``dh``, the gradient reaching the step's ``h`` from the
output layer (None where the output is elsewhere), and the step's slices of what
``prepare_backward`` returned; it returns ``(dh_prev, delta)``: the gradient reaching the
previous state (the next carry), and the gradient with respect to the step's input
projection ``ux`` (which gives ``dW_in`` and ``db``) and recurrent projection
``h_prev @ W (+ b_h)`` (``dW`` and ``db_h``): one ``(B, G*H)`` array where they are the
same, the pair ``(d_in, d_rec)`` for the GRU (``separate_recurrent_delta``). ``w_t`` is
``W.T``.

The equations, with ``s`` the sigmoid and ``*`` element-wise:

* ``rnn``:  ``h = f(ux + h_prev @ W)``, ``f`` the ``hidden`` activation (G = 1).
* ``lstm``: ``i, f, g, o = s(a_i), s(a_f), tanh(a_g), s(a_o)`` for
  ``a = ux + h_prev @ W``; ``c = f * c_prev + i * g``; ``h = o * tanh(c)`` (G = 4).
* ``gru``:  ``r, z = s(ux_r + hw_r), s(ux_z + hw_z)`` and
  ``n = tanh(ux_n + r * hw_n)`` for ``hw = h_prev @ W (+ b_h)``;
  ``h = (1 - z) * n + z * h_prev`` (G = 3), PyTorch's ``nn.GRU``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn.backends import Array, ArrayNamespace
from xpnn.errors import XpnnValueError, check_choice, shown
from xpnn.nn.functions import get_activation

State = Any  # an array (B, H), or the LSTM's pair (h, c)
CELLS = ("rnn", "lstm", "gru")


class Cell:
    """What every cell declares: its name, gate count and parameter shapes."""

    name: str
    gates: int
    hidden: str  # the activation of the state, for the model's config
    #: whether ``d_rec`` differs from ``d_in`` (the GRU's reset gate sits inside ``n``)
    separate_recurrent_delta = False
    #: whether the state is the pair ``(h, c)``
    paired_state = False

    def param_shapes(self, input_size: int, hidden_size: int, bias: bool) -> dict[str, tuple]:
        """The cell's parameters: ``W_in``, ``W`` and, with ``bias``, ``b``."""
        width = self.gates * hidden_size
        shapes: dict[str, tuple] = {"W_in": (input_size, width), "W": (hidden_size, width)}
        if bias:
            shapes["b"] = (width,)
        return shapes

    def zero_state(self, like: Array, xp: ArrayNamespace, device: Any) -> State:
        """Zeros of ``like``'s shape ``(B, H)`` and dtype on ``device`` (the model's,
        handed down: asking ``like`` for its device is a lookup ``torch.compile`` cannot
        trace through array-api-compat): the state before step 0."""
        return xp.zeros(like.shape, dtype=like.dtype, device=device)

    def prepare_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace
    ) -> Mapping[str, Array]:
        """What ``step_forward`` reads as ``params``: by default ``params`` itself."""
        return params

    def step_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace, state: State, ux: Array
    ) -> tuple[State, tuple[State, tuple]]:
        """One step from ``ux`` ``(B, G*H)`` and the previous state: ``(state, (state,
        cache))``."""
        raise NotImplementedError

    def prepare_backward(
        self, caches: tuple, states: State, state0: State, xp: ArrayNamespace
    ) -> tuple:
        """What ``step_backward`` takes of every step, as a tuple of ``(T, B, ...)``
        arrays: computed over all steps at once from the stacked per-step caches
        (fields ``(T, B, ...)``), the stacked ``states`` after each step and the initial
        ``state0`` (None for zeros)."""
        raise NotImplementedError

    def step_backward(
        self, w_t: Array, xp: ArrayNamespace, dh_next: State, x: tuple
    ) -> tuple[State, Any]:
        """One step back: ``(dh_prev, delta)``, see the module docstring."""
        raise NotImplementedError


def _previous(stack: Array, first: Array | None, xp: ArrayNamespace) -> Array:
    """The state before each step, ``(T, B, H)``: ``first`` (None: zeros), then the
    stacked states ``stack`` of steps ``0 .. T - 2``."""
    first = xp.zeros_like(stack[:1, ...]) if first is None else xp.expand_dims(first, axis=0)
    return xp.concat([first, stack[:-1, ...]], axis=0)


def _gate(a: Array, xp: ArrayNamespace) -> Array:
    """The gates' sigmoid as ``0.5 * tanh(a / 2) + 0.5``: the same function, finite for
    any ``a``, and without the sign branch of ``xpnn.nn.functions.sigmoid``, whose
    ``where`` over the random signs of a gate's pre-activations costs NumPy about ten
    times the arithmetic at large batches. (The simple RNN keeps that ``sigmoid``, so
    its numbers stay the same bit for bit.)"""
    return 0.5 * xp.tanh(0.5 * a) + 0.5


class RNNCell(Cell):
    """The simple RNN: ``h = f(ux + h_prev @ W)``; cache ``(u,)`` where ``f'`` reads
    ``u`` (relu), else nothing (``f'`` reads the state ``h``)."""

    name, gates = "rnn", 1

    def __init__(self, hidden: str = "sigmoid") -> None:
        self.hidden = hidden
        self._activation = get_activation(hidden)

    def step_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace, state: State, ux: Array
    ) -> tuple[State, tuple[State, tuple]]:
        u = ux + state @ params["W"]
        h = self._activation.forward(u, xp=xp)
        return h, (h, (u,) if self._activation.reads_input else ())

    def prepare_backward(
        self, caches: tuple, states: State, state0: State, xp: ArrayNamespace
    ) -> tuple:
        """``(f'(u),)``, ``(T, B, H)`` for every step, computed over all rows at once."""
        us = caches[0] if caches else states  # f' reads the state alone: it stands in
        return (self._activation.derivative(us, states, xp),)

    def step_backward(
        self, w_t: Array, xp: ArrayNamespace, dh_next: State, x: tuple
    ) -> tuple[State, Any]:
        dh, slope = x  # the output's gradient (or None), f'(u)
        delta = (dh_next if dh is None else dh + dh_next) * slope  # dE/du = dE/dh * f'(u)
        return delta @ w_t, delta


class LSTMCell(Cell):
    """Long short-term memory, gates ``i, f, g, o``; state ``(h, c)``; cache
    ``(gates, tanh(c))``, the activated gates side by side ``(B, 4H)``."""

    name, gates, hidden, paired_state = "lstm", 4, "tanh", True

    def prepare_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace
    ) -> Mapping[str, Array]:
        """``W`` and the per-column ``scale`` and ``shift`` ``(4H,)`` (0.5 on the
        sigmoid gates ``i, f, o``; 1 and 0 on ``g``) with which one ``tanh`` activates
        every gate: ``tanh(a * scale) * scale + shift`` is ``0.5 * tanh(0.5 * a) + 0.5``
        (``_gate``) on ``i, f, o`` and ``tanh(a)`` on ``g``, to the bit (a product by
        1 and a sum with 0 are exact). In ``W``'s dtype, on its device."""
        w = params["W"]
        row = w[0, : w.shape[0]]  # (H,): for the dtype and device only
        half, one, zero = xp.full_like(row, 0.5), xp.ones_like(row), xp.zeros_like(row)
        scale = xp.concat([half, half, one, half])
        shift = xp.concat([half, half, zero, half])
        return {"W": w, "scale": scale, "shift": shift}

    def zero_state(self, like: Array, xp: ArrayNamespace, device: Any) -> State:
        """The pair ``(h, c)`` of zeros ``(B, H)``."""
        zeros = super().zero_state(like, xp, device)
        return zeros, zeros

    def step_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace, state: State, ux: Array
    ) -> tuple[State, tuple[State, tuple]]:
        size = params["W"].shape[0]
        h_prev, c_prev = state
        a = ux + h_prev @ params["W"]
        scale = params["scale"]
        gates = xp.tanh(a * scale) * scale + params["shift"]  # s(a_i), s(a_f), tanh(a_g), s(a_o)
        i, f = gates[:, :size], gates[:, size : 2 * size]
        g, o = gates[:, 2 * size : 3 * size], gates[:, 3 * size :]
        c = f * c_prev + i * g
        tc = xp.tanh(c)
        h = o * tc
        return (h, c), ((h, c), (gates, tc))

    def prepare_backward(
        self, caches: tuple, states: State, state0: State, xp: ArrayNamespace
    ) -> tuple:
        """``(dc_dh, factors, f)``, computed over all ``T * B`` rows at once:
        ``dc_dh = o * (1 - tanh(c)**2)`` ``(T, B, H)`` and the factors ``(T, B, 4H)`` that
        turn ``[dc, dc, dc, dh]`` into ``dE/da`` (the gates' derivatives at their
        pre-activations, times what each gate multiplies)."""
        gates, tc = caches
        size = tc.shape[-1]
        i, f = gates[..., :size], gates[..., size : 2 * size]
        g, o = gates[..., 2 * size : 3 * size], gates[..., 3 * size :]
        c_prev = _previous(states[1], None if state0 is None else state0[1], xp)
        dc_dh = o * (1.0 - tc * tc)
        factors = xp.concat(
            [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)],
            axis=-1,
        )
        return dc_dh, factors, f

    def step_backward(
        self, w_t: Array, xp: ArrayNamespace, dh_next: State, x: tuple
    ) -> tuple[State, Any]:
        """``dh_next`` is the pair ``(dh, dc)`` from step ``t + 1``."""
        dh, dc_dh, factors, f = x
        dh_later, dc_later = dh_next
        dh = dh_later if dh is None else dh + dh_later
        dc = dh * dc_dh + dc_later
        delta = xp.concat([dc, dc, dc, dh], axis=1) * factors  # dE/da, at the pre-activations
        return (delta @ w_t, dc * f), delta


class GRUCell(Cell):
    """Gated recurrent unit in PyTorch's form, gates ``r, z, n``; cache
    ``(rz, n, hw_n)``, ``rz`` the gates ``r`` and ``z`` side by side ``(B, 2H)``."""

    name, gates, hidden, separate_recurrent_delta = "gru", 3, "tanh", True

    def param_shapes(self, input_size: int, hidden_size: int, bias: bool) -> dict[str, tuple]:
        """``W_in``, ``W`` and, with ``bias``, ``b`` and the recurrent bias ``b_h``."""
        shapes = super().param_shapes(input_size, hidden_size, bias)
        if bias:
            shapes["b_h"] = shapes["b"]
        return shapes

    def step_forward(
        self, params: Mapping[str, Array], xp: ArrayNamespace, state: State, ux: Array
    ) -> tuple[State, tuple[State, tuple]]:
        size = params["W"].shape[0]
        h_prev = state
        hw = h_prev @ params["W"]
        if "b_h" in params:
            hw = hw + params["b_h"]
        rz = _gate(ux[:, : 2 * size] + hw[:, : 2 * size], xp)
        r, z = rz[:, :size], rz[:, size:]
        hw_n = hw[:, 2 * size :]
        n = xp.tanh(ux[:, 2 * size :] + r * hw_n)
        h = n + z * (h_prev - n)  # (1 - z) * n + z * h_prev
        return h, (h, (rz, n, hw_n))

    def prepare_backward(
        self, caches: tuple, states: State, state0: State, xp: ArrayNamespace
    ) -> tuple:
        """``(in_factors, rec_factors, z)``, computed over all ``T * B`` rows at once: the
        factors ``(T, B, 3H)`` that turn ``[dh, dh, dh]`` into the gradients at the input
        and the recurrent projections."""
        rz, n, hw_n = caches
        size = n.shape[-1]
        r, z = rz[..., :size], rz[..., size:]
        h_prev = _previous(states, state0, xp)
        dn = (1.0 - z) * (1.0 - n * n)  # dh -> n's pre-activation
        dr = dn * hw_n * r * (1.0 - r)
        dz = (h_prev - n) * z * (1.0 - z)
        in_factors = xp.concat([dr, dz, dn], axis=-1)
        rec_factors = xp.concat([dr, dz, dn * r], axis=-1)  # r scales h @ W_n inside n
        return in_factors, rec_factors, z

    def step_backward(
        self, w_t: Array, xp: ArrayNamespace, dh_next: State, x: tuple
    ) -> tuple[State, Any]:
        dh, in_factors, rec_factors, z = x
        dh = dh_next if dh is None else dh + dh_next
        dh3 = xp.concat([dh, dh, dh], axis=1)
        d_in, d_rec = dh3 * in_factors, dh3 * rec_factors
        return d_rec @ w_t + dh * z, (d_in, d_rec)


def make_cell(cell: Any, hidden: str | None) -> Cell:
    """The cell called ``cell``. ``hidden`` is the simple RNN's activation (default
    ``"sigmoid"``); the LSTM and GRU have their own (None or ``"tanh"``)."""
    if check_choice(cell, "cell", CELLS) == "rnn":
        return RNNCell("sigmoid" if hidden is None else hidden)
    if hidden not in (None, "tanh"):
        msg = (
            f"hidden applies to cell 'rnn' only: the {cell} cell has sigmoid gates and a "
            f"tanh state; got hidden={shown(hidden)}"
        )
        raise XpnnValueError(msg, argument="hidden")
    return LSTMCell() if cell == "lstm" else GRUCell()
