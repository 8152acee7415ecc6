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
from xpnn.checks import check_positive, check_size
from xpnn.errors import XpnnValueError, shown
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
    the unchecked core (``forward_unchecked``, ``loss_unchecked``, ``backward_unchecked``,
    ``targets_unchecked``; see ``xpnn.nn.core``): pure functions of explicit parameters,
    for callers that have checked their arrays once already (``make_step``, ``train``).
    """

    batch_axis = 0

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
        self.sizes = [check_size(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
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

    # -- public entry points: check their input, then run the unchecked core ----------

    def forward(self, x: Array) -> tuple[Array, MLPCache]:
        """``y, cache`` for ``x`` of shape ``(B, n_in)``; ``y`` is ``(B, n_out)``."""
        self._check_x(x)
        return self.forward_unchecked(x, self.params)

    def backward(self, cache: MLPCache, d: Array) -> dict[str, Array]:
        """Gradients of the loss with respect to every parameter, for targets ``d``
        ``(B, n_out)`` (or integer labels ``(B,)`` with softmax + cross-entropy)."""
        self._check_cache(cache, MLPCache)
        d = self._check_d(d, cache.y.shape[0])
        return self.backward_unchecked(cache, d)

    def loss(self, x: Array, d: Array) -> Array:
        """The loss (a 0-D array) of ``x`` ``(B, n_in)`` against ``d``."""
        self._check_x(x)
        d = self._check_d(d, x.shape[0])
        return self.loss_unchecked(self.forward_unchecked(x, self.params)[1], d)

    def loss_and_grad(self, x: Array, d: Array) -> tuple[Array, dict[str, Array]]:
        """``(loss, grads)`` for one batch: a 0-D array and a dict keyed like ``params``."""
        self._check_x(x)
        d = self._check_d(d, x.shape[0])
        _y, cache = self.forward_unchecked(x, self.params)
        return self.loss_unchecked(cache, d), self.backward_unchecked(cache, d)

    def predict(self, x: Array) -> Array:
        """The output ``y`` ``(B, n_out)`` for ``x`` ``(B, n_in)``."""
        return self.forward(x)[0]

    def check_batch(self, x: Array, d: Array) -> None:
        """Refuse a batch the unchecked core cannot take: ``x`` ``(B, n_in)`` and floating
        targets ``d`` ``(B, n_out)``, arrays of the model's backend, device and dtype.
        Metadata only: no value is read (``make_step``'s check)."""
        self._check_array(x, "x", shape=(None, self.sizes[0]))
        self._check_array(d, "d", shape=(x.shape[0], self.sizes[-1]))

    @property
    def activation(self) -> Activation:
        """The hidden layers' activation: ``forward(u, xp=)`` and ``derivative(u, z, xp)``
        (the slope at the pre-activation ``u``, given its output ``z``)."""
        return self._activation

    @property
    def output_layer(self) -> OutputLayer:
        """The output activation with its loss: ``forward``, ``value`` (the loss),
        ``delta`` (``dE/du`` at the output's pre-activation) and ``targets``."""
        return self._out

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
        return self.targets_unchecked(d)

    # -- the unchecked core (xpnn.nn.core.ModelCore): pure, the caller has checked ------

    def forward_unchecked(
        self, x: Array, params: Mapping[str, Array], h0: None = None
    ) -> tuple[Array, MLPCache]:
        """``(y, cache)`` for ``x`` ``(B, n_in)`` with ``params``; ``y`` is ``(B, n_out)``.
        Unchecked (``xpnn.nn.core``); ``h0`` is there for the protocol and must be None."""
        xp, f = self.xp, self._activation.forward
        z, zs, us = x, [], []
        for layer in range(1, self.n_layers + 1):
            u = xp.matmul(z, params[f"W{layer}"]) + params[f"b{layer}"]
            zs.append(z)
            us.append(u)
            z = f(u, xp=xp) if layer < self.n_layers else self._out.forward(u, xp)
        return z, MLPCache(dict(params), zs, us, z)

    def loss_unchecked(self, cache: MLPCache, d: Array) -> Array:
        """The loss (0-D) of ``cache``'s output against floating targets ``d``
        ``(B, n_out)``. Unchecked."""
        return self._out.value(cache.us[-1], cache.y, d, self.xp)

    def backward_unchecked(
        self, cache: MLPCache, d: Array, truncate: None = None
    ) -> dict[str, Array]:
        """The gradients of ``loss_unchecked(cache, d)``, keyed like ``params``;
        ``truncate`` is there for the protocol (an MLP has no time axis). Unchecked."""
        xp, act = self.xp, self._activation
        delta = self._out.delta(cache.us[-1], cache.y, d, xp)  # dE/du_L, (B, n_out)
        grads: dict[str, Array] = {}
        for layer in range(self.n_layers, 0, -1):
            z_prev = cache.zs[layer - 1]
            grads[f"W{layer}"] = xp.matmul(z_prev.T, delta)
            grads[f"b{layer}"] = xp.sum(delta, axis=0)
            if layer > 1:
                u_prev = cache.us[layer - 2]
                dz = xp.matmul(delta, cache.params[f"W{layer}"].T)
                delta = dz * act.derivative(u_prev, z_prev, xp)
        return {key: grads[key] for key in self.param_shapes}

    def targets_unchecked(self, d: Array) -> Array:
        """Checked targets ``d`` as floating rows ``(B, n_out)``: integer labels ``(B,)``
        become one-hot rows (softmax or sigmoid output with cross-entropy). Unchecked."""
        return self._out.targets(d, self.sizes[-1], self.dtype, self.xp)
