"""The multilayer perceptron: forward with a cache, backward to a dict of gradients.

Layer ``l`` computes ``u_l = z_{l-1} @ W_l + b_l`` and ``z_l = f(u_l)`` with ``z_0 = x``;
the last layer's activation is the output activation. Backward walks the layers in
reverse with ``delta_l = dE/du_l``::

    dW_l = z_{l-1}.T @ delta_l        db_l = sum(delta_l, axis=0)
    delta_{l-1} = (delta_l @ W_l.T) * f'(u_{l-1})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from xpnn.backends import Array, host_rng
from xpnn.errors import XpnnValueError, check_integer, check_positive, shown
from xpnn.nn.core import Core, check_array
from xpnn.nn.functions import Activation, get_activation
from xpnn.nn.init import draw_weight
from xpnn.nn.losses import OutputLayer
from xpnn.nn.model import Model, is_integer_array


@dataclass(frozen=True)
class MLPCache:
    """What ``backward`` needs from ``forward``: the parameters used, each layer's input
    ``zs[l-1]`` ``(B, n_{l-1})``, pre-activation ``us[l-1]`` ``(B, n_l)`` and the output
    ``y`` ``(B, n_out)``."""

    params: dict[str, Array]
    zs: list[Array]
    us: list[Array]
    y: Array


@dataclass(frozen=True, eq=False)
class MLPCore(Core):
    """The MLP's math (``xpnn.nn.core``): ``forward(params, x)`` for ``x`` ``(B, n_in)``,
    ``loss``, ``backward``, ``targets``; pure and unchecked.

    Attributes
    ----------
    activation : Activation
        The hidden layers' activation: ``forward(u, xp=)`` and ``derivative(u, z, xp)``
        (the slope at the pre-activation ``u``, given its output ``z``).
    out : OutputLayer
        The output activation with its loss: ``forward``, ``value`` (the loss),
        ``delta`` (``dE/du`` at the output's pre-activation) and ``targets``.
    sizes : tuple of int
        The layer widths ``(n_in, ..., n_out)``.
    """

    activation: Activation
    out: OutputLayer
    sizes: tuple[int, ...]

    def forward(
        self, params: Mapping[str, Array], x: Array, h0: None = None
    ) -> tuple[Array, MLPCache]:
        """``(y, cache)`` for ``x`` ``(B, n_in)``; ``y`` is ``(B, n_out)``. ``h0`` must be
        None (an MLP has no state)."""
        xp, f, layers = self.xp, self.activation.forward, len(self.sizes) - 1
        z, zs, us = x, [], []
        for layer in range(1, layers + 1):
            u = z @ params[f"W{layer}"] + params[f"b{layer}"]
            zs.append(z)
            us.append(u)
            z = f(u, xp=xp) if layer < layers else self.out.forward(u, xp)
        return z, MLPCache(dict(params), zs, us, z)

    def loss(self, cache: MLPCache, d: Array) -> Array:
        """The loss (0-D) of ``cache``'s output against floating targets ``d``
        ``(B, n_out)``."""
        return self.out.value(cache.us[-1], cache.y, d, self.xp)

    def backward(self, cache: MLPCache, d: Array, truncate: None = None) -> dict[str, Array]:
        """The gradients of ``loss(cache, d)``, keyed like ``params`` (``truncate`` must
        be None: an MLP has no time axis)."""
        xp, act = self.xp, self.activation
        delta = self.out.delta(cache.us[-1], cache.y, d, xp)  # dE/du_L, (B, n_out)
        grads: dict[str, Array] = {}
        for layer in range(len(self.sizes) - 1, 0, -1):
            z_prev = cache.zs[layer - 1]
            grads[f"W{layer}"] = z_prev.T @ delta
            grads[f"b{layer}"] = xp.sum(delta, axis=0)
            if layer > 1:
                u_prev = cache.us[layer - 2]
                dz = delta @ cache.params[f"W{layer}"].T
                delta = dz * act.derivative(u_prev, z_prev, xp)
        return {key: grads[key] for key in self.param_shapes}

    def targets(self, d: Array) -> Array:
        """Checked targets ``d`` as floating rows ``(B, n_out)``: integer labels ``(B,)``
        become one-hot rows (softmax or sigmoid output with cross-entropy)."""
        return self.out.targets(d, self.sizes[-1], self.dtype, self.xp)

    def check_batch(self, x: Any, d: Any) -> None:
        """Refuse a batch ``forward`` and ``loss`` cannot take: ``x`` ``(B, n_in)`` and
        floating targets ``d`` ``(B, n_out)``, arrays of the model's backend, device and
        dtype. Metadata only."""
        check_array(self, x, "x", shape=(None, self.sizes[0]))
        check_array(self, d, "d", shape=(x.shape[0], self.sizes[-1]))


class MLP(Model):
    """A fully connected network with hand-written backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, n_hidden..., n_out]``; at least two.
    hidden : {"relu", "sigmoid", "tanh", "identity"}
        Activation of every hidden layer.
    output : {"softmax", "sigmoid", "identity"}
        Activation of the output layer.
    loss : {"cross_entropy", "mse"}
        ``cross_entropy`` needs a softmax or sigmoid output.
    init : {"he", "xavier", "std"}
        Weight initialiser; ``std`` scales standard normals by ``weight_init_std``.
    seed : int
        Seed of the host generator: the same seed gives the same weights on every backend.
    backend, device, dtype
        Where the parameters live and in which floating dtype they compute.

    Notes
    -----
    ``forward``, ``backward``, ``loss`` and ``loss_and_grad`` check their input, then run
    ``model.core`` (``MLPCore``): pure functions of explicit parameters, for callers that
    have checked their arrays once already (``make_step``, ``train``).
    """

    core_class = MLPCore

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        hidden: str = "relu",
        output: str = "softmax",
        loss: str = "cross_entropy",
        init: str = "he",
        weight_init_std: float = 0.01,
        seed: int = 0,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        super().__init__(backend=backend, device=device, dtype=dtype)
        self._configure(sizes, hidden, output, loss)
        weight_init_std = check_positive(weight_init_std, "weight_init_std")
        self.init, self.weight_init_std, self.seed = init, weight_init_std, seed
        rng = host_rng(seed)
        params = {}
        for layer, (fan_in, fan_out) in enumerate(pairwise(self.sizes), start=1):
            weight = draw_weight(rng, (fan_in, fan_out), init, weight_init_std)
            params[f"W{layer}"] = self.asarray(weight, name=f"W{layer}")
            params[f"b{layer}"] = self.xp.zeros((fan_out,), dtype=self.dtype, device=self.device)
        self.params = params

    def _configure(self, sizes: Sequence[int], hidden: str, output: str, loss: str) -> None:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
            msg = f"sizes must be a list of layer widths such as [2, 3, 2], got {shown(sizes)}"
            raise XpnnValueError(msg)
        sizes = list(sizes)
        if len(sizes) < 2:
            msg = f"sizes must list at least an input and an output width, got {shown(sizes)}"
            raise XpnnValueError(msg)
        self.sizes = [check_integer(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        self.hidden, self.output, self.loss_name = hidden, output, loss
        self._activation = get_activation(hidden)
        self._out = OutputLayer(output, loss)
        self.n_layers = len(sizes) - 1
        self.param_shapes = {}
        for layer, (fan_in, fan_out) in enumerate(pairwise(self.sizes), start=1):
            self.param_shapes[f"W{layer}"] = (fan_in, fan_out)
            self.param_shapes[f"b{layer}"] = (fan_out,)

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        *,
        hidden: str = "relu",
        output: str = "softmax",
        loss: str = "cross_entropy",
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> MLP:
        """A network with the given ``W1, b1, W2, b2, ...`` (host arrays, nested lists or
        arrays of the backend); the layer widths are read off the weights."""
        net = cls._unconfigured(backend=backend, device=device, dtype=dtype)
        arrays = net._params_from_host(params)
        n_layers = sum(1 for key in arrays if key.startswith("W"))
        weights = [arrays.get(f"W{layer}") for layer in range(1, n_layers + 1)]
        if n_layers < 1 or any(w is None or w.ndim != 2 for w in weights):
            msg = f"params must hold 2-D weights W1..WL and biases b1..bL, got {sorted(arrays)}"
            raise XpnnValueError(msg)
        sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
        net._configure(sizes, hidden, output, loss)
        return net._given(arrays)

    @property
    def config(self) -> dict[str, Any]:
        """The architecture as plain data (what a checkpoint stores)."""
        return {
            "model": "MLP",
            "sizes": list(self.sizes),
            "hidden": self.hidden,
            "output": self.output,
            "loss": self.loss_name,
        }

    def _architecture(self) -> dict[str, Any]:
        return {"activation": self._activation, "out": self._out, "sizes": tuple(self.sizes)}

    # -- public entry points: check their input, then run the core ----------------------

    def forward(self, x: Array) -> tuple[Array, MLPCache]:
        """``y, cache`` for ``x`` of shape ``(B, n_in)``; ``y`` is ``(B, n_out)``."""
        self._check_x(x)
        return self.core.forward(self.params, x)

    def backward(self, cache: MLPCache, d: Array) -> dict[str, Array]:
        """Gradients of the loss with respect to every parameter, for targets ``d``
        ``(B, n_out)`` (or integer labels ``(B,)`` with softmax + cross-entropy)."""
        self._check_cache(cache, MLPCache)
        d = self._check_d(d, cache.y.shape[0])
        return self.core.backward(cache, d)

    def loss(self, x: Array, d: Array) -> Array:
        """The loss (a 0-D array) of ``x`` ``(B, n_in)`` against ``d``."""
        self._check_x(x)
        d = self._check_d(d, x.shape[0])
        return self.core.loss(self.core.forward(self.params, x)[1], d)

    def loss_and_grad(self, x: Array, d: Array) -> tuple[Array, dict[str, Array]]:
        """``(loss, grads)`` for one batch: a 0-D array and a dict keyed like ``params``."""
        self._check_x(x)
        d = self._check_d(d, x.shape[0])
        return self.core.value_and_grad(self.params, x, d)

    def predict(self, x: Array) -> Array:
        """The output ``y`` ``(B, n_out)`` for ``x`` ``(B, n_in)``."""
        return self.forward(x)[0]

    def _check_x(self, x: Array) -> None:
        self._check_array(x, "x", shape=(None, self.sizes[0]))
        self._check_finite(x, "x")

    def _check_d(self, d: Array, batch: int) -> Array:
        """Check targets and return them as floating rows ``(B, n_out)``."""
        n_out = self.sizes[-1]
        labels = self._out.accepts_labels and is_integer_array(d)
        shape = (batch,) if labels else (batch, n_out)
        self._check_array(d, "d", shape=shape, integer_ok=labels)
        self._check_finite(d, "d")
        self._check_labels(d, "d", n_out)
        return self.core.targets(d)
