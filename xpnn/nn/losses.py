"""Losses, their gradients, and the output layer that pairs an activation with a loss.

The conventions, for a batch of ``B`` rows:

* squared error is ``0.5 * sum((y - d)**2) / B``, gradient ``(y - d) / B``;
* cross-entropy is the batch mean of ``-sum(d * log(y))``; after a softmax its gradient
  with respect to the pre-activation is ``(y - d) / B``. After a sigmoid it is the binary
  cross-entropy ``-sum(d log y + (1 - d) log(1 - y))``, with the same gradient.

The course's ``mean_squared_error`` divides by ``B * K`` while its
``d_mean_squared_error`` divides by ``B``; here loss and gradient agree. Argument order
is the course's: target first, ``(d, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import array_api_compat
import array_api_extra as xpx

from xpnn.backends import Array, ArrayNamespace
from xpnn.errors import XpnnValueError, check_choice
from xpnn.nn.functions import sigmoid, softmax

OUTPUTS = ("identity", "sigmoid", "softmax")
LOSSES = ("mse", "cross_entropy")
CROSS_ENTROPY_EPS = 1e-7


def _batch(y: Array) -> int:
    """The batch size: the first axis of ``(B, K)``, the second of time-major ``(T, B, K)``."""
    return y.shape[1] if y.ndim == 3 else y.shape[0]


def mean_squared_error(d: Array, y: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``0.5 * sum((y - d)**2) / B`` for ``y, d`` of shape ``(B, K)`` (or ``(T, B, K)``,
    summed over time): a 0-D array."""
    xp = xp or array_api_compat.array_namespace(d, y)
    e = y - d
    return 0.5 * xp.sum(e * e) / _batch(y)


def d_mean_squared_error(d: Array, y: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``(y - d) / B``, the gradient of ``mean_squared_error`` with respect to ``y``."""
    return (y - d) / _batch(y)


def _as_one_hot(d: Array, k: int, dtype: object, xp: ArrayNamespace) -> Array:
    """Integer labels of shape ``(...)`` to one-hot rows ``(..., k)``; one-hot rows unchanged."""
    if xp.isdtype(d.dtype, "integral"):
        return xpx.one_hot(d, k, dtype=dtype, xp=xp)
    return d


def cross_entropy_error(
    d: Array, y: Array, /, *, eps: float = CROSS_ENTROPY_EPS, xp: ArrayNamespace | None = None
) -> Array:
    """``-sum(d * log(y + eps)) / B`` for probabilities ``y`` of shape ``(B, K)``.

    ``d`` is one-hot ``(B, K)`` or integer labels ``(B,)``. ``eps`` (the course's 1e-7)
    keeps the log finite where ``y`` is 0; the models use the exact log-sum-exp form of
    ``softmax_with_loss`` instead.
    """
    xp = xp or array_api_compat.array_namespace(d, y)
    d = _as_one_hot(d, y.shape[-1], y.dtype, xp)
    return -xp.sum(d * xp.log(y + eps)) / _batch(y)


def _logsumexp(u: Array, xp: ArrayNamespace) -> Array:
    m = xp.max(u, axis=-1, keepdims=True)
    return xp.log(xp.sum(xp.exp(u - m), axis=-1)) + m[..., 0]


def softmax_with_loss(d: Array, u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """Cross-entropy of ``softmax(u)`` against ``d``, from the pre-activation ``u``
    ``(B, K)`` through log-sum-exp: exact, and finite for any finite ``u``.

    ``d`` is one-hot rows (each summing to 1) or integer labels ``(B,)``.
    """
    xp = xp or array_api_compat.array_namespace(d, u)
    d = _as_one_hot(d, u.shape[-1], u.dtype, xp)
    return (xp.sum(_logsumexp(u, xp)) - xp.sum(d * u)) / _batch(u)


def d_softmax_with_loss(d: Array, y: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``(y - d) / B``: the gradient of ``softmax_with_loss`` with respect to the
    pre-activation, given ``y = softmax(u)``."""
    xp = xp or array_api_compat.array_namespace(d, y)
    return (y - _as_one_hot(d, y.shape[-1], y.dtype, xp)) / _batch(y)


def sigmoid_with_loss(d: Array, u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """Binary cross-entropy of ``sigmoid(u)`` against ``d`` in [0, 1], from the
    pre-activation ``u`` ``(B, K)``: ``sum(softplus(u) - d * u) / B``, stable for any ``u``."""
    xp = xp or array_api_compat.array_namespace(d, u)
    softplus = u * xp.astype(u > 0, u.dtype) + xp.log1p(xp.exp(-xp.abs(u)))
    return xp.sum(softplus - d * u) / _batch(u)


def d_sigmoid_with_loss(d: Array, y: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``(y - d) / B``: the gradient of ``sigmoid_with_loss`` with respect to the
    pre-activation, given ``y = sigmoid(u)``. (The course uses this name after a softmax,
    where the formula happens to agree; here each name means what it says.)"""
    return (y - d) / _batch(y)


@dataclass(frozen=True)
class OutputLayer:
    """An output activation with its loss: forward, loss and ``dE/du`` at the
    pre-activation ``u``. Shapes: ``u, y, d`` are ``(B, K)`` or ``(T, B, K)``."""

    output: str
    loss: str

    def __post_init__(self) -> None:
        check_choice(self.output, "output activation", OUTPUTS, argument="output")
        check_choice(self.loss, "loss", LOSSES)
        if self.loss == "cross_entropy" and self.output == "identity":
            msg = (
                "loss 'cross_entropy' needs probabilities: use output 'softmax' (classes) or "
                "'sigmoid' (independent binary targets), not 'identity'"
            )
            raise XpnnValueError(msg)

    @property
    def accepts_labels(self) -> bool:
        """Whether integer class labels are valid targets (softmax + cross-entropy)."""
        return self.output == "softmax" and self.loss == "cross_entropy"

    def forward(self, u: Array, xp: ArrayNamespace) -> Array:
        """``y = f(u)``."""
        if self.output == "softmax":
            return softmax(u, xp=xp)
        if self.output == "sigmoid":
            return sigmoid(u, xp=xp)
        return u

    def targets(self, d: Array, k: int, dtype: object, xp: ArrayNamespace) -> Array:
        """Targets as floating rows of width ``k`` (integer labels become one-hot)."""
        return _as_one_hot(d, k, dtype, xp)

    def value(self, u: Array, y: Array, d: Array, xp: ArrayNamespace) -> Array:
        """The loss, a 0-D array; ``d`` already passed through ``targets``."""
        if self.loss == "mse":
            return mean_squared_error(d, y, xp=xp)
        if self.output == "softmax":
            return softmax_with_loss(d, u, xp=xp)
        return sigmoid_with_loss(d, u, xp=xp)

    def delta(self, u: Array, y: Array, d: Array, xp: ArrayNamespace) -> Array:
        """``dE/du``, shaped like ``u``; ``d`` already passed through ``targets``."""
        if self.loss == "cross_entropy" or self.output == "identity":
            return (y - d) / _batch(y)  # the canonical pairs: the activation's Jacobian cancels
        g = (y - d) / _batch(y)  # dE/dy of the squared error
        if self.output == "sigmoid":
            return g * y * (1.0 - y)
        return y * (g - xp.sum(g * y, axis=-1, keepdims=True))  # softmax Jacobian times g
