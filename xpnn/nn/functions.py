"""Activation functions and their derivatives, with the course's names.

Every function works element-wise on an array of any shape (``softmax``: along the last
axis) and returns the input's dtype. Derivatives ``d_*`` take the *pre-activation* ``u``,
never the activation's output: the course's RNN applies ``d_sigmoid`` to the output ``y``
and its regression notebook applies ``d_sigmoid`` to a ReLU layer's output, both wrong.

``xp`` is the array namespace; it is worked out from the input when not given, so a
model passes it down once instead of looking it up on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import array_api_compat

from xpnn.backends import Array, ArrayNamespace
from xpnn.errors import check_choice


def sigmoid(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``1 / (1 + exp(-x))``, computed from ``e = exp(-|x|)`` as ``1 / (1 + e)`` where
    ``x >= 0`` and ``e / (1 + e)`` below: no ``|x|`` overflows, and small outputs keep their
    relative precision. (``0.5 * tanh(x / 2) + 0.5`` is as safe, but NumPy's ``tanh`` is
    several times slower than its ``exp``.)"""
    xp = xp or array_api_compat.array_namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e) / (1.0 + e)


def relu(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``max(0, x)``."""
    xp = xp or array_api_compat.array_namespace(x)
    return x * xp.astype(x > 0, x.dtype)


def tanh(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``tanh(x)``."""
    xp = xp or array_api_compat.array_namespace(x)
    return xp.tanh(x)


def identity(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``x``, unchanged (the regression and sine networks' output)."""
    return x


def step_function(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``1`` where ``x > 0``, else ``0``, in ``x``'s floating dtype (the course returns
    integers)."""
    xp = xp or array_api_compat.array_namespace(x)
    return xp.astype(x > 0, x.dtype)


def softmax(x: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``exp(x) / sum(exp(x))`` along the last axis, for any number of dimensions.

    The row maximum is subtracted first, so large inputs do not overflow. The course's
    version treats 3-D input as 1-D and normalises over the whole array.
    """
    xp = xp or array_api_compat.array_namespace(x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


# Each derivative once, as a layer uses it: f'(u) from the pre-activation ``u`` and the
# already computed ``z = f(u)`` (``sigmoid'(u) = z * (1 - z)``: fewer array calls).


def _sigmoid_slope(u: Array, z: Array, xp: ArrayNamespace) -> Array:
    return z * (1.0 - z)


def _relu_slope(u: Array, z: Array, xp: ArrayNamespace) -> Array:
    return step_function(u, xp=xp)


def _tanh_slope(u: Array, z: Array, xp: ArrayNamespace) -> Array:
    return 1.0 - z * z


def _identity_slope(u: Array, z: Array, xp: ArrayNamespace) -> Array:
    return xp.ones_like(u)


def d_sigmoid(u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``sigmoid(u) * (1 - sigmoid(u))``, at the pre-activation ``u``."""
    xp = xp or array_api_compat.array_namespace(u)
    return _sigmoid_slope(u, sigmoid(u, xp=xp), xp)


def d_relu(u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``1`` where ``u > 0``, else ``0``, in ``u``'s floating dtype."""
    xp = xp or array_api_compat.array_namespace(u)
    return _relu_slope(u, u, xp)


def d_tanh(u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``1 - tanh(u)**2`` (the course's ``1 / cosh(u)**2``, without its overflow)."""
    xp = xp or array_api_compat.array_namespace(u)
    return _tanh_slope(u, tanh(u, xp=xp), xp)


def d_identity(u: Array, /, *, xp: ArrayNamespace | None = None) -> Array:
    """``1`` everywhere, in ``u``'s dtype."""
    xp = xp or array_api_compat.array_namespace(u)
    return _identity_slope(u, u, xp)


@dataclass(frozen=True)
class Activation:
    """An element-wise activation as a layer uses it.

    ``derivative(u, z, xp)`` is ``f'(u)``; it may read the already computed ``z = f(u)``
    instead of evaluating ``f`` again (``sigmoid'(u) = z * (1 - z)``), which is the same
    number at fewer array calls. ``reads_input`` says whether it reads ``u`` at all:
    when it does not, ``z`` may stand in ``u``'s place (a recurrent cell then keeps no
    copy of ``u``).
    """

    name: str
    forward: Callable[..., Array]
    derivative: Callable[[Array, Array, ArrayNamespace], Array]
    reads_input: bool = False


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, _sigmoid_slope),
    "relu": Activation("relu", relu, _relu_slope, reads_input=True),
    "tanh": Activation("tanh", tanh, _tanh_slope),
    "identity": Activation("identity", identity, _identity_slope),
}


def get_activation(name: str, *, role: str = "hidden") -> Activation:
    """The activation called ``name``; ``role`` names the argument in the error."""
    return ACTIVATIONS[check_choice(name, f"{role} activation", list(ACTIVATIONS), argument=role)]
