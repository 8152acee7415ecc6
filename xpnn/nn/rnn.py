"""The recurrent network: a cell (``rnn``, ``lstm`` or ``gru``) run over time by the BPTT
driver, with an output layer on top.

The cell's step is in ``xpnn.nn.cells``, the time loop (full and truncated BPTT,
many-to-many and many-to-one, the batched input projection and output layer) in
``xpnn.nn.recurrent``; this module is the public model: construction, parameters, input
checks. For the simple RNN (``cell="rnn"``, the course's network)::

    u_t = x_t @ W_in + z_{t-1} @ W (+ b)        z_t = f(u_t)
    y_t = g(z_t @ W_out (+ b_out))              (every t, or only t = T-1 if many_to_one)

and backward::

    delta_t = (delta_out_t @ W_out.T + delta_{t+1} @ W.T) * f'(u_t)
    dW_in = sum_t x_t.T @ delta_t      dW = sum_t z_{t-1}.T @ delta_t
    dW_out = sum_t z_t.T @ delta_out_t

The course's code differs in two places that a gradient check catches: it takes
``d_sigmoid`` of the output ``y`` instead of the pre-activation, and (sine notebook) it
uses ``z_t`` where ``z_{t-1}`` belongs and injects an output delta at every step of a
many-to-one network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import xpnn.nn.recurrent as recurrent
from xpnn.backends import Array, host_rng
from xpnn.errors import XpnnValueError, check_choice, check_integer, check_positive, shown
from xpnn.nn.cells import Cell, State, make_cell
from xpnn.nn.core import Core, check_array
from xpnn.nn.init import RECURRENT_INITS, draw_weight
from xpnn.nn.losses import OutputLayer
from xpnn.nn.model import Model, is_integer_array
from xpnn.nn.recurrent import RNNCache


@dataclass(frozen=True, eq=False)
class RNNCore(Core):
    """The recurrent network's math (``xpnn.nn.core``): ``forward(params, xs, h0)`` for
    time-major ``xs`` ``(T, B, I)``, ``loss``, ``backward(cache, ds, truncate)``,
    ``targets``; pure and unchecked. The time loop is ``xpnn.nn.recurrent``'s, the step
    the ``cell``'s (``xpnn.nn.cells``), the output layer ``out``."""

    cell: Cell
    out: OutputLayer
    input_size: int
    output_size: int
    many_to_one: bool

    batch_axis = 1

    def forward(
        self, params: Mapping[str, Array], xs: Array, h0: State = None
    ) -> tuple[Array, RNNCache]:
        """``(ys, cache)`` for ``xs`` ``(T, B, I)`` from state ``h0`` (None: zeros);
        ``ys`` is ``(T, B, O)``, or ``(B, O)`` if many-to-one."""
        return recurrent.forward(
            self.cell,
            self.out,
            xs,
            params,
            h0,
            many_to_one=self.many_to_one,
            xp=self.xp,
            device=self.device,
            scan=self.scan,
        )

    def loss(self, cache: RNNCache, ds: Array) -> Array:
        """The loss (0-D) of ``cache``'s outputs against floating targets ``ds`` shaped
        like them: per-step loss, mean over the batch, summed over time."""
        return self.out.value(cache.v, cache.y, ds, self.xp)

    def backward(self, cache: RNNCache, ds: Array, truncate: int | None = None) -> dict[str, Array]:
        """The gradients of ``loss(cache, ds)``, keyed like ``params``: full BPTT, or
        truncated to blocks of ``truncate`` steps (an int of at least 1)."""
        grads = recurrent.backward(
            self.cell,
            self.out,
            cache,
            ds,
            truncate,
            many_to_one=self.many_to_one,
            xp=self.xp,
            scan=self.scan,
        )
        return {key: grads[key] for key in self.param_shapes}

    def targets(self, ds: Array) -> Array:
        """Checked targets ``ds`` as floating rows shaped like the outputs: integer labels
        (without the last axis) become one-hot rows."""
        return self.out.targets(ds, self.output_size, self.dtype, self.xp)

    def check_batch(self, xs: Any, ds: Any) -> None:
        """Refuse a batch ``forward`` and ``loss`` cannot take: ``xs`` ``(T, B, I)`` and
        floating targets ``ds`` ``(T, B, O)`` (``(B, O)`` if many-to-one), arrays of the
        model's backend, device and dtype. Metadata only."""
        check_array(self, xs, "xs", shape=(None, None, self.input_size))
        lead = (xs.shape[1],) if self.many_to_one else (xs.shape[0], xs.shape[1])
        check_array(self, ds, "ds", shape=(*lead, self.output_size))


class RNN(Model):
    """A single-layer recurrent network.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Widths ``I``, ``H``, ``O``.
    hidden : {"sigmoid", "tanh", "relu"}, optional
        Activation of the simple RNN's state (default ``"sigmoid"``); the LSTM and GRU
        have sigmoid gates and a tanh state (None or ``"tanh"``).
    output : {"sigmoid", "identity", "softmax"}
        Output activation.
    loss : {"mse", "cross_entropy"}
        Per time step, summed over steps (mean over the batch).
    bias : bool
        Whether to add biases ``b`` (and the GRU's ``b_h``) and ``b_out``.
    many_to_one : bool
        Output only at the last step: ``forward`` returns ``(B, O)``.
    cell : {"rnn", "lstm", "gru"}
        The recurrent cell (``xpnn.nn.cells``): with ``G`` = 1, 4 or 3 gates the
        parameters are ``W_in`` ``(I, G*H)``, ``W`` ``(H, G*H)``, ``W_out`` ``(H, O)``,
        and with biases ``b`` ``(G*H,)``, ``b_out`` ``(O,)``, for the GRU ``b_h``
        ``(G*H,)``. Gates in PyTorch's order: ``i, f, g, o`` and ``r, z, n``.
    init : {"std", "xavier", "he", "identity"}
        As for ``MLP``; the course's default is ``init="std"`` with ``weight_init_std=1``.
        ``"identity"`` is the IRNN's start (Le, Jaitly and Hinton, 2015), for the simple
        RNN only: ``W = init_scale * I``, ``W_in`` and ``W_out`` drawn as ``std`` (the
        paper: ``weight_init_std=0.001``), biases 0.
    init_scale : float, optional
        The identity's scale (default 1.0; the paper scales it down for short memories);
        ``init="identity"`` only.
    weight_init_std, seed, backend, device, dtype
        As for ``MLP``.

    Notes
    -----
    As for ``MLP``, the checked public methods run ``model.core`` (``RNNCore``:
    ``forward(params, xs, h0)``, ``loss``, ``backward(cache, ds, truncate)``,
    ``targets``; see ``xpnn.nn.core``).
    """

    core_class = RNNCore

    batch_axis = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        hidden: str | None = None,
        output: str = "sigmoid",
        loss: str = "mse",
        bias: bool = False,
        many_to_one: bool = False,
        cell: str = "rnn",
        init: str = "std",
        weight_init_std: float = 1.0,
        init_scale: float | None = None,
        seed: int = 0,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__(backend=backend, device=device, dtype=dtype)
        self._configure(
            input_size, hidden_size, output_size, hidden, output, loss, bias, many_to_one, cell
        )
        weight_init_std = check_positive(weight_init_std, "weight_init_std")
        scale = _check_identity(init, init_scale, self.cell.name)
        self.init, self.weight_init_std, self.seed = init, weight_init_std, seed
        self.init_scale = scale
        rng = host_rng(seed)
        params = {}
        for key in ("W_in", "W_out", "W"):  # the notebook's order of draws
            draw = "std" if init == "identity" else init
            params[key] = self.asarray(
                draw_weight(rng, self.param_shapes[key], draw, weight_init_std), name=key
            )
        if init == "identity":  # drawn all the same, so the other weights match std's
            eye = self.xp.eye(self.hidden_size, dtype=self.dtype, device=self.device)
            params["W"] = scale * eye
        for key in self.param_shapes:
            if key.startswith("b"):
                params[key] = self.xp.zeros(
                    self.param_shapes[key], dtype=self.dtype, device=self.device
                )
        self.params = params

    def _configure(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        hidden: str | None,
        output: str,
        loss: str,
        bias: bool,
        many_to_one: bool,
        cell: str,
    ) -> None:
        self.cell = make_cell(cell, hidden)
        self.input_size = check_integer(input_size, "input_size")
        self.hidden_size = check_integer(hidden_size, "hidden_size")
        self.output_size = check_integer(output_size, "output_size")
        self.hidden, self.output, self.loss_name = self.cell.hidden, output, loss
        self.bias, self.many_to_one = bool(bias), bool(many_to_one)
        self._out = OutputLayer(output, loss)
        i, h, o = self.input_size, self.hidden_size, self.output_size
        shapes = self.cell.param_shapes(i, h, self.bias)
        self.param_shapes = {"W_in": shapes["W_in"], "W": shapes["W"], "W_out": (h, o)}
        if self.bias:
            self.param_shapes.update({k: v for k, v in shapes.items() if k.startswith("b")})
            self.param_shapes["b_out"] = (o,)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        hidden: str | None = None,
        output: str = "sigmoid",
        loss: str = "mse",
        many_to_one: bool = False,
        cell: str = "rnn",
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> RNN:
        """A network with the given ``W_in``, ``W``, ``W_out`` (and ``b``, ``b_out``, for
        the GRU also ``b_h``, for a network with biases); the sizes are read off ``W_in``
        and ``W_out``: ``I, G*H = W_in.shape`` and ``O = W_out.shape[1]``."""
        gates = make_cell(cell, hidden).gates
        net = cls._unconfigured(backend=backend, device=device, dtype=dtype)
        arrays = net._params_from_host(params)
        w_in, w_out = arrays.get("W_in"), arrays.get("W_out")
        if w_in is None or w_out is None or w_in.ndim != 2 or w_out.ndim != 2:
            msg = f"params must hold 2-D W_in, W and W_out, got {shown(sorted(arrays))}"
            raise XpnnValueError(msg, argument="params")
        if w_in.shape[1] % gates:
            msg = (
                f"W_in must have G*H columns, a multiple of the {cell} cell's {gates} gates, "
                f"got shape {tuple(w_in.shape)}"
            )
            raise XpnnValueError(msg, argument="W_in")
        if cell == "gru" and "b" in arrays and "b_h" not in arrays:
            msg = "a gru with the input bias b needs the recurrent bias b_h (G*H,) too"
            raise XpnnValueError(msg, argument="params")
        net._configure(
            w_in.shape[0],
            w_in.shape[1] // gates,
            w_out.shape[1],
            hidden,
            output,
            loss,
            any(key.startswith("b") for key in arrays),
            many_to_one,
            cell,
        )
        return net._given(arrays)

    @property
    def config(self) -> dict[str, Any]:
        """The architecture as plain data (what a checkpoint stores)."""
        return {
            "model": "RNN",
            "cell": self.cell.name,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "hidden": self.hidden,
            "output": self.output,
            "loss": self.loss_name,
            "bias": self.bias,
            "many_to_one": self.many_to_one,
        }

    def _architecture(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "out": self._out,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "many_to_one": self.many_to_one,
        }

    # -- public entry points ------------------------------------------------------------

    def forward(self, xs: Array, h0: State = None) -> tuple[Array, RNNCache]:
        """``ys, cache`` for ``xs`` ``(T, B, input_size)``; ``ys`` is ``(T, B, output_size)``,
        or ``(B, output_size)`` if many-to-one. ``h0`` is the initial state, ``(B,
        hidden_size)``, for the LSTM the pair ``(h0, c0)`` (zeros if None); the final
        state is ``cache.state_at(-1)``."""
        self._check_xs(xs, h0)
        return self.core.forward(self.params, xs, h0)

    def backward(self, cache: RNNCache, ds: Array, truncate: int | None = None) -> dict[str, Array]:
        """Gradients (keys as ``params``) for targets ``ds`` shaped like ``ys`` (integer
        labels without the last axis for softmax + cross-entropy). ``truncate=k`` runs
        truncated BPTT over blocks of ``k`` steps."""
        self._check_cache(cache, RNNCache)
        ds = self._check_ds(ds, cache.xs.shape[0], cache.xs.shape[1])
        return self.core.backward(cache, ds, check_truncate(truncate))

    def loss(self, xs: Array, ds: Array, h0: State = None) -> Array:
        """The loss (a 0-D array): per-step loss, mean over the batch, summed over time."""
        self._check_xs(xs, h0)
        ds = self._check_ds(ds, xs.shape[0], xs.shape[1])
        return self.core.loss(self.core.forward(self.params, xs, h0)[1], ds)

    def loss_and_grad(
        self, xs: Array, ds: Array, truncate: int | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """``(loss, grads)`` for one batch of sequences."""
        self._check_xs(xs, None)
        ds = self._check_ds(ds, xs.shape[0], xs.shape[1])
        return self.core.value_and_grad(self.params, xs, ds, check_truncate(truncate))

    def predict(self, xs: Array, h0: State = None) -> Array:
        """The outputs for ``xs`` ``(T, B, input_size)``."""
        return self.forward(xs, h0)[0]

    def _check_xs(self, xs: Array, h0: State) -> None:
        self._check_array(xs, "xs", shape=(None, None, self.input_size))
        self._check_finite(xs, "xs")
        if h0 is None:
            return
        paired = isinstance(h0, (tuple, list))
        if self.cell.paired_state and not (paired and len(h0) == 2):
            msg = (
                "h0 of an lstm must be the pair (h0, c0) of (B, hidden_size) arrays, got "
                f"{type(h0).__name__}" + (f" of length {len(h0)}" if paired else "")
            )
            raise XpnnValueError(msg, argument="h0")
        if paired and not self.cell.paired_state:
            msg = (
                f"h0 of a {self.cell.name} cell must be one (B, hidden_size) array, got a "
                f"{type(h0).__name__}; only the lstm takes the pair (h0, c0)"
            )
            raise XpnnValueError(msg, argument="h0")
        names = ("h0[0]", "h0[1]") if paired else ("h0",)
        for name, state in zip(names, h0 if paired else (h0,), strict=True):
            self._check_array(state, name, shape=(xs.shape[1], self.hidden_size))
            self._check_finite(state, name)

    def _check_ds(self, ds: Array, steps: int, batch: int) -> Array:
        """Check targets against ``steps`` and ``batch``; return floating rows."""
        labels = self._out.accepts_labels and is_integer_array(ds)
        lead = (batch,) if self.many_to_one else (steps, batch)
        shape = lead if labels else (*lead, self.output_size)
        self._check_array(ds, "ds", shape=shape, integer_ok=labels)
        self._check_finite(ds, "ds")
        self._check_labels(ds, "ds", self.output_size)
        return self.core.targets(ds)


def _check_identity(init: Any, init_scale: Any, cell: str) -> float | None:
    """The identity's scale (1.0 if None) where ``init`` is ``"identity"``, for the simple
    RNN only; None otherwise, where ``init_scale`` must be None too."""
    check_choice(init, "init", RECURRENT_INITS)
    if init != "identity":
        if init_scale is not None:
            msg = f'init_scale applies to init="identity" only, got init={init!r}'
            raise XpnnValueError(msg, argument="init_scale")
        return None
    if cell != "rnn":
        msg = (
            f"init 'identity' starts a simple RNN's recurrent weights at a scaled identity (the "
            f"IRNN); the {cell} cell's W is (H, G*H), one block a gate, and the IRNN paper "
            "defines no identity start for it: use cell 'rnn' or another init"
        )
        raise XpnnValueError(msg, argument="init")
    return 1.0 if init_scale is None else check_positive(init_scale, "init_scale")


def check_truncate(truncate: Any) -> int | None:
    """``truncate`` must be None (full BPTT) or an integer of at least 1."""
    if truncate is None:
        return None
    return check_integer(truncate, "truncate")
