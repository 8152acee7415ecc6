"""The simple RNN, trained with backpropagation through time (BPTT).

Sequences are time-major: ``xs`` is ``(T, B, input_size)``. With ``z_{-1} = h0`` (zeros
unless given)::

    u_t = x_t @ W_in + z_{t-1} @ W (+ b)        z_t = f(u_t)
    y_t = g(z_t @ W_out (+ b_out))              (every t, or only t = T-1 if many_to_one)

Only the recurrence runs step by step. The input projection, the output layer, the
output deltas and the ``W_in``, ``W`` and ``W_out`` gradients are each one matmul over
all ``T * B`` rows. Backward::

    delta_t = (delta_out_t @ W_out.T + delta_{t+1} @ W.T) * f'(u_t)
    dW_in = sum_t x_t.T @ delta_t      dW = sum_t z_{t-1}.T @ delta_t
    dW_out = sum_t z_t.T @ delta_out_t

The course's code differs in two places that a gradient check catches: it takes
``d_sigmoid`` of the output ``y`` instead of the pre-activation, and (sine notebook) it
uses ``z_t`` where ``z_{t-1}`` belongs and injects an output delta at every step of a
many-to-one network.

Truncated BPTT (``truncate=k``) cuts the time axis into blocks of ``k`` steps from the
start; gradients do not flow from one block into the previous one. It is the exact
gradient of the loss in which each block's incoming state is a constant, which is how
``gradient_check`` verifies it. ``truncate >= T`` is full BPTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xpnn.backend import Array, host_rng
from xpnn.errors import XpnnValueError
from xpnn.nn.functions import get_activation
from xpnn.nn.init import draw_weight
from xpnn.nn.losses import OutputLayer
from xpnn.nn.model import Model, check_positive, check_size, is_integer_array


@dataclass(frozen=True)
class RNNCache:
    """What ``backward`` needs from ``forward``.

    ``xs`` ``(T, B, I)``; ``h0`` ``(B, H)`` or None for zeros; ``us`` and ``zs`` the
    pre-activations and states, lists of ``T`` arrays ``(B, H)``; ``v`` and ``y`` the
    output pre-activation and output, ``(T, B, O)`` or ``(B, O)`` if many-to-one.
    """

    params: dict[str, Array]
    xs: Array
    h0: Array | None
    us: list[Array]
    zs: list[Array]
    v: Array
    y: Array


class RNN(Model):
    """A single-layer recurrent network.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Widths ``I``, ``H``, ``O``.
    hidden : {"sigmoid", "tanh", "relu"}
        Activation of the recurrent state.
    output : {"sigmoid", "identity", "softmax"}
        Output activation.
    loss : {"mse", "cross_entropy"}
        Per time step, summed over steps (mean over the batch).
    bias : bool
        Whether to add biases ``b`` (hidden) and ``b_out`` (output).
    many_to_one : bool
        Output only at the last step: ``forward`` returns ``(B, O)``.
    init, weight_init_std, seed, backend, device, dtype
        As for ``MLP``; the course's default is ``init="std"`` with ``weight_init_std=1``.
    """

    batch_axis = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        hidden: str = "sigmoid",
        output: str = "sigmoid",
        loss: str = "mse",
        bias: bool = False,
        many_to_one: bool = False,
        init: str = "std",
        weight_init_std: float = 1.0,
        seed: int = 0,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__(backend=backend, device=device, dtype=dtype)
        self._configure(
            input_size, hidden_size, output_size, hidden, output, loss, bias, many_to_one
        )
        weight_init_std = check_positive(weight_init_std, "weight_init_std")
        self.init, self.weight_init_std, self.seed = init, weight_init_std, seed
        rng = host_rng(seed)
        params = {}
        for key in ("W_in", "W_out", "W"):  # the notebook's order of draws
            params[key] = self.asarray(
                draw_weight(rng, self.param_shapes[key], init, weight_init_std), name=key
            )
        for key in ("b", "b_out")[: 2 * bias]:
            params[key] = self.xp.zeros(
                self.param_shapes[key], dtype=self.dtype, device=self.device
            )
        self.params = params

    def _configure(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        hidden: str,
        output: str,
        loss: str,
        bias: bool,
        many_to_one: bool,
    ) -> None:
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.output_size = check_size(output_size, "output_size")
        self.hidden, self.output, self.loss_name = hidden, output, loss
        self.bias, self.many_to_one = bool(bias), bool(many_to_one)
        self._activation = get_activation(hidden)
        self._out = OutputLayer(output, loss)
        i, h, o = self.input_size, self.hidden_size, self.output_size
        self.param_shapes = {"W_in": (i, h), "W": (h, h), "W_out": (h, o)}
        if self.bias:
            self.param_shapes.update({"b": (h,), "b_out": (o,)})

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        hidden: str = "sigmoid",
        output: str = "sigmoid",
        loss: str = "mse",
        many_to_one: bool = False,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> RNN:
        """A network with the given ``W_in``, ``W``, ``W_out`` (and ``b``, ``b_out`` for a
        network with biases); the sizes are read off ``W_in`` and ``W_out``."""
        net = cls.__new__(cls)
        Model.__init__(net, backend=backend, device=device, dtype=dtype)
        arrays = net._params_from_host(params)
        w_in, w_out = arrays.get("W_in"), arrays.get("W_out")
        if w_in is None or w_out is None or w_in.ndim != 2 or w_out.ndim != 2:
            msg = f"params must hold 2-D W_in, W and W_out, got {sorted(arrays)}"
            raise XpnnValueError(msg)
        net._configure(
            w_in.shape[0],
            w_in.shape[1],
            w_out.shape[1],
            hidden,
            output,
            loss,
            "b" in arrays or "b_out" in arrays,
            many_to_one,
        )
        net.init, net.weight_init_std, net.seed = "given", None, None
        net.params = arrays
        return net

    @property
    def config(self) -> dict[str, Any]:
        """The architecture as plain data (what a checkpoint stores)."""
        return {
            "model": "RNN",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "hidden": self.hidden,
            "output": self.output,
            "loss": self.loss_name,
            "bias": self.bias,
            "many_to_one": self.many_to_one,
        }

    # -- public entry points ------------------------------------------------------------

    def forward(self, xs: Array, h0: Array | None = None) -> tuple[Array, RNNCache]:
        """``ys, cache`` for ``xs`` ``(T, B, input_size)``; ``ys`` is ``(T, B, output_size)``,
        or ``(B, output_size)`` if many-to-one. ``h0`` ``(B, hidden_size)`` is the initial
        state (zeros if None); the final state is ``cache.zs[-1]``."""
        self._check_xs(xs, h0)
        return self._forward(xs, self.params, h0)

    def backward(self, cache: RNNCache, ds: Array, truncate: int | None = None) -> dict[str, Array]:
        """Gradients (keys ``W_in``, ``W``, ``W_out``, and ``b``, ``b_out`` with biases) for
        targets ``ds`` shaped like ``ys`` (integer labels without the last axis for
        softmax + cross-entropy). ``truncate=k`` runs truncated BPTT over blocks of ``k``."""
        self.check_cache(cache, RNNCache)
        ds = self._check_ds(ds, cache.xs.shape[0], cache.xs.shape[1])
        return self._backward(cache, ds, check_truncate(truncate))

    def loss(self, xs: Array, ds: Array, h0: Array | None = None) -> Array:
        """The loss (a 0-D array): per-step loss, mean over the batch, summed over time."""
        self._check_xs(xs, h0)
        ds = self._check_ds(ds, xs.shape[0], xs.shape[1])
        return self._loss(xs, ds, self.params, h0)

    def loss_and_grad(
        self, xs: Array, ds: Array, truncate: int | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """``(loss, grads)`` for one batch of sequences."""
        self._check_xs(xs, None)
        ds = self._check_ds(ds, xs.shape[0], xs.shape[1])
        truncate = check_truncate(truncate)
        _, cache = self._forward(xs, self.params, None)
        return self._loss_value(cache, ds), self._backward(cache, ds, truncate)

    def predict(self, xs: Array, h0: Array | None = None) -> Array:
        """The outputs for ``xs`` ``(T, B, input_size)``."""
        return self.forward(xs, h0)[0]

    def _check_xs(self, xs: Array, h0: Array | None) -> None:
        self.check_array(xs, "xs", shape=(None, None, self.input_size))
        self.check_finite(xs, "xs")
        if h0 is not None:
            self.check_array(h0, "h0", shape=(xs.shape[1], self.hidden_size))
            self.check_finite(h0, "h0")

    def _check_ds(self, ds: Array, steps: int, batch: int) -> Array:
        """Check targets against ``steps`` and ``batch``; return floating rows."""
        labels = self._out.accepts_labels and is_integer_array(ds)
        lead = (batch,) if self.many_to_one else (steps, batch)
        shape = lead if labels else (*lead, self.output_size)
        self.check_array(ds, "ds", shape=shape, integer_ok=labels)
        self.check_finite(ds, "ds")
        self.check_labels(ds, "ds", self.output_size)
        return self._out.targets(ds, self.output_size, self.dtype, self.xp)

    # -- the unchecked core ---------------------------------------------------------------

    def _forward(
        self, xs: Array, params: Mapping[str, Array], h0: Array | None = None
    ) -> tuple[Array, RNNCache]:
        # Operators (``@``, ``.T``) rather than ``xp.matmul``: the same standard operation,
        # without a wrapper's Python call, which at batch 1 costs more than the arithmetic.
        xp, f = self.xp, self._activation.forward
        steps, batch, _ = xs.shape
        u_in = xs @ params["W_in"]  # every step's input projection: (T, B, I) @ (I, H)
        if self.bias:
            u_in = u_in + params["b"]
        w = params["W"]
        us, zs = [], []
        z = h0
        for t in range(steps):
            u = u_in[t, ...] if z is None else u_in[t, ...] + z @ w
            z = f(u, xp=xp)
            us.append(u)
            zs.append(z)
        if self.many_to_one:
            v = z @ params["W_out"]
        else:  # the output layer over all T * B rows at once
            z_rows = xp.concat(zs, axis=0)
            v = xp.reshape(z_rows @ params["W_out"], (steps, batch, self.output_size))
        if self.bias:
            v = v + params["b_out"]
        y = self._out.forward(v, xp)
        return y, RNNCache(dict(params), xs, h0, us, zs, v, y)

    def _loss_value(self, cache: RNNCache, ds: Array) -> Array:
        return self._out.value(cache.v, cache.y, ds, self.xp)

    def _loss(
        self, xs: Array, ds: Array, params: Mapping[str, Array], h0: Array | None = None
    ) -> Array:
        return self._loss_value(self._forward(xs, params, h0)[1], ds)

    def _backward(
        self, cache: RNNCache, ds: Array, truncate: int | None = None
    ) -> dict[str, Array]:
        xp, params = self.xp, cache.params
        steps, batch, _ = cache.xs.shape
        rows = steps * batch
        # Per-step arrays are joined into (T * B, .) rows, step t in rows t*B .. (t+1)*B - 1.
        z_rows = xp.concat(cache.zs, axis=0)
        d_act = self._activation.derivative(xp.concat(cache.us, axis=0), z_rows, xp)  # f'(u)
        delta_out = self._out.delta(cache.v, cache.y, ds, xp)  # dE/dv
        grads: dict[str, Array] = {}
        if self.many_to_one:  # the output, and its delta, exist at the last step only
            grads["W_out"] = cache.zs[-1].T @ delta_out
            dz_last = delta_out @ params["W_out"].T
        else:
            delta_out = xp.reshape(delta_out, (rows, self.output_size))
            grads["W_out"] = z_rows.T @ delta_out
            dz_out = delta_out @ params["W_out"].T  # dE/dz_t from the output, (T * B, H)
        if self.bias:
            grads["b_out"] = xp.sum(delta_out, axis=0)

        w_t = params["W"].T
        block = truncate or steps
        deltas: list[Array] = [None] * steps
        carry = None  # delta_{t+1} @ W.T, the gradient reaching z_t through the recurrence
        for t in range(steps - 1, -1, -1):
            step = slice(t * batch, (t + 1) * batch)
            if self.many_to_one:
                dz = dz_last if t == steps - 1 else carry
            else:
                dz = dz_out[step, ...] if carry is None else dz_out[step, ...] + carry
            if dz is None:  # many-to-one, before the last block: no gradient reaches here
                shape = (batch, self.hidden_size)
                deltas[t] = xp.zeros(shape, dtype=self.dtype, device=self.device)
                continue
            delta = dz * d_act[step, ...]
            deltas[t] = delta
            carry = None if t % block == 0 else delta @ w_t

        delta_rows = xp.concat(deltas, axis=0)
        x_rows = xp.reshape(cache.xs, (rows, self.input_size))
        grads["W_in"] = x_rows.T @ delta_rows
        # sum over t >= 1 of z_{t-1}.T @ delta_t: rows of z_0 .. z_{T-2} against delta_1 ..
        grads["W"] = z_rows[: rows - batch, ...].T @ delta_rows[batch:, ...]
        if cache.h0 is not None:
            grads["W"] = grads["W"] + cache.h0.T @ deltas[0]
        if self.bias:
            grads["b"] = xp.sum(delta_rows, axis=0)
        return {key: grads[key] for key in self.param_shapes}


def check_truncate(truncate: Any) -> int | None:
    """``truncate`` must be None (full BPTT) or an integer of at least 1."""
    if truncate is None:
        return None
    return check_size(truncate, "truncate")
