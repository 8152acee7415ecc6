"""A model's core: its math as pure functions of explicit parameters, apart from the model.

``model.core`` is what code calls that has checked its input once, at its own boundary:
``make_step``'s step, ``gradient_check``, the training loop, a parallel worker. It holds
the architecture and the placement (backend, device, dtype) but no parameters, so a
compiled step built on it keeps neither the model nor its parameters alive::

    y, cache = core.forward(params, x)          # x (B, n_in), or time-major (T, B, I)
    loss = core.loss(cache, d)                  # 0-D; d floating rows (core.targets)
    grads = core.backward(cache, d)             # keyed like params
    loss, grads = core.value_and_grad(params, x, d)

The core is **pure** and **unchecked**: every function depends only on its arguments and
the architecture, creates arrays functionally and reads no value on the host (so
``jax.jit`` and ``torch.compile`` can trace it), and trusts its caller to have checked the
shapes, dtypes, backend, device and finiteness of every array, as the model's public
methods do. ``check_params`` and ``check_batch`` are those checks on metadata alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xpnn.backends import (
    Array,
    ArrayNamespace,
    backend_name,
    device_name,
    device_of,
    namespace_of,
    odd_array,
)
from xpnn.errors import XpnnTypeError, XpnnValueError, shown


@dataclass(frozen=True, eq=False)
class Core:
    """What every core holds: the placement and the parameter shapes.

    Attributes
    ----------
    backend : str
        The backend's name (``"numpy"``), for messages.
    xp : namespace
        The backend's array namespace.
    device, dtype
        Where the arrays live and their floating dtype.
    scan : callable
        The backend's time loop (``xpnn.backends.Backend.scan``).
    param_shapes : dict of str to tuple
        The name and shape of every parameter: the keys of ``params`` and of the grads.
    """

    backend: str
    xp: ArrayNamespace
    device: Any
    dtype: Any
    scan: Callable[..., tuple[Any, Any]]
    param_shapes: dict[str, tuple[int, ...]]

    batch_axis = 0
    """The axis of a batch's rows in ``x``: 0 for ``(B, n_in)``, 1 for ``(T, B, I)``."""

    def forward(self, params: Mapping[str, Array], x: Array, h0: Any = None) -> tuple[Array, Any]:
        """``(y, cache)``: the output for ``x`` with ``params``, and what ``backward``
        needs. ``h0`` is an RNN's initial state (None: zeros)."""
        raise NotImplementedError

    def loss(self, cache: Any, d: Array) -> Array:
        """The loss (0-D) of ``forward``'s output against floating targets ``d``."""
        raise NotImplementedError

    def backward(self, cache: Any, d: Array, truncate: int | None = None) -> dict[str, Array]:
        """The gradient of ``loss(cache, d)`` with respect to every parameter."""
        raise NotImplementedError

    def targets(self, d: Array) -> Array:
        """Targets as the floating rows the core takes: integer class labels become
        one-hot rows in the model's dtype; floating targets pass as they are."""
        raise NotImplementedError

    def check_batch(self, x: Any, d: Any) -> None:
        """Refuse a batch ``forward`` and ``loss`` cannot take (metadata only)."""
        raise NotImplementedError

    def value_and_grad(
        self, params: Mapping[str, Array], x: Array, d: Array, truncate: int | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """``(loss, grads)`` of one batch: a training step's gradient part."""
        _y, cache = self.forward(params, x)
        return self.loss(cache, d), self.backward(cache, d, truncate)

    def check_params(self, params: Any) -> None:
        """Refuse ``params`` unless it is a dict with exactly this model's parameter
        names, each an array of its backend, device, dtype and shape (metadata only)."""
        if not isinstance(params, Mapping):
            msg = f"params must be a dict of parameter arrays, got {type(params).__name__}"
            raise XpnnTypeError(msg, argument="params")
        if set(params) != set(self.param_shapes):
            msg = (
                f"params must have the keys {sorted(self.param_shapes)}, got "
                f"{shown(sorted(map(str, params)))}"
            )
            raise XpnnValueError(msg, argument="params")
        for key, value in params.items():
            check_array(self, value, key, shape=self.param_shapes[key])


def check_array(
    where: Any, x: Any, name: str, *, shape: tuple[int | None, ...], integer_ok: bool = False
) -> Array:
    """Refuse ``x`` unless it is an array of ``where``'s backend and device (a model or
    a core) with its dtype (or integers, where ``integer_ok``) and ``shape`` (``None``
    matches any length, at least 1). Metadata only: no value is read."""
    try:
        xp = namespace_of(x)
    except XpnnTypeError:
        msg = (
            f"{name} must be an array of the model's backend ({where.backend}), got "
            f"{type(x).__name__}; convert host data with model.asarray({name})"
        )
        raise XpnnTypeError(msg, argument=name) from None
    odd = odd_array(x)
    if odd is not None:
        raise XpnnTypeError(f"{name} must be a plain array: {odd}", argument=name)
    if xp is not where.xp:
        msg = (
            f"{name} is a {backend_name(xp)} array but the model runs on {where.backend}; "
            f"convert it with model.asarray({name})"
        )
        raise XpnnTypeError(msg, argument=name)
    if device_of(x) != where.device:
        msg = (
            f"{name} is on device {device_name(device_of(x))!r} but the model is on "
            f"{device_name(where.device)!r}; move it with model.asarray({name})"
        )
        raise XpnnTypeError(msg, argument=name)
    if x.dtype != where.dtype and not (integer_ok and xp.isdtype(x.dtype, "integral")):
        kind = "floating" if xp.isdtype(x.dtype, "real floating") else "non-floating"
        msg = (
            f"{name} has {kind} dtype {x.dtype} but the model computes in {where.dtype}; "
            f"convert it with model.asarray({name})"
        )
        raise XpnnTypeError(msg, argument=name)
    if len(x.shape) != len(shape) or any(
        want is not None and got != want for got, want in zip(x.shape, shape, strict=True)
    ):
        expected = "(" + ", ".join("any" if s is None else str(s) for s in shape)
        expected += ",)" if len(shape) == 1 else ")"
        msg = f"{name} must have shape {expected}, got {tuple(x.shape)}"
        raise XpnnValueError(msg, argument=name)
    if any(s == 0 for s in x.shape):
        msg = f"{name} is empty (shape {tuple(x.shape)}); it needs at least one row"
        raise XpnnValueError(msg, argument=name)
    return x
