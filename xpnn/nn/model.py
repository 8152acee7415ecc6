"""What every xpnn model shares: its backend, device and dtype, its parameter dict, the
checks of the arrays handed to its public methods, and its pure, unchecked core apart
from it (``Model.core``, ``xpnn.nn.core``)."""

from __future__ import annotations

import functools
import inspect
import json
import warnings
from collections.abc import Mapping
from typing import Any

from xpnn.backends import (
    Array,
    check_host_input,
    get_backend,
    get_namespace,
    namespace_of,
    resolve_device,
    resolve_dtype,
)
from xpnn.errors import NonFiniteError, XpnnTypeError, XpnnValueError, shown
from xpnn.nn.core import Core, check_array

_RENAMED = {
    "forward_unchecked": "forward",
    "loss_unchecked": "loss",
    "backward_unchecked": "backward",
    "targets_unchecked": "targets",
}
"""The unchecked methods of earlier versions, and their place on ``model.core``."""


class Model:
    """Base of ``MLP`` and ``RNN``: a backend namespace ``xp``, a device, a floating dtype
    and a dict of parameters living there.

    Subclasses set ``param_shapes`` (name to shape) before assigning ``params``, and
    name their core's class (``core_class``) and what it takes (``_architecture``); their
    checked public methods call the core.
    """

    param_shapes: dict[str, tuple[int, ...]]
    batch_axis = 0

    def __init__(self, *, backend: str, device: Any, dtype: Any) -> None:
        self.xp = get_namespace(backend)
        self.backend = backend
        self.device = resolve_device(self.xp, device)
        self.dtype = resolve_dtype(self.xp, dtype, self.device)
        self._params: dict[str, Array] = {}

    # -- construction from a saved configuration ---------------------------------------

    @classmethod
    def configured(cls, config: Mapping[str, Any]) -> Model:
        """A ``cls`` with the architecture ``config`` (what ``model.config`` returns) and
        no backend or parameters yet: its ``param_shapes`` come from ``_configure``, and
        no array is made, so a hostile configuration costs nothing to check.

        Raises
        ------
        XpnnValueError
            ``config`` names another model, lacks or adds an entry, or has a value
            ``_configure`` refuses or would change (``bias="yes"`` is not ``True``).
        """
        if not isinstance(config, Mapping):
            msg = f"config must be a dict, got {type(config).__name__}"
            raise XpnnTypeError(msg)
        names = list(inspect.signature(cls._configure).parameters)[1:]
        given = {k: v for k, v in config.items() if k != "model"}
        if config.get("model") != cls.__name__ or set(given) != set(names):
            msg = (
                f"a {cls.__name__} configuration has the entries model, {', '.join(names)}; "
                f"got {shown(sorted(map(str, config)))}"
            )
            raise XpnnValueError(msg)
        net = cls.__new__(cls)
        net._configure(**given)
        if _json(net.config) != _json(config):
            msg = f"config {shown(config)} is not the {cls.__name__} it describes: {net.config}"
            raise XpnnValueError(msg)
        return net

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        backend: str = "numpy",
        device: Any = None,
        dtype: Any = "float64",
    ) -> Model:
        """A ``cls`` of architecture ``config`` (``model.config``) with the parameters
        ``params`` (host arrays or nested lists, shaped as ``config`` implies), on
        ``backend``, ``device`` and ``dtype``."""
        net = cls.configured(config)
        Model.__init__(net, backend=backend, device=device, dtype=dtype)
        return net._given(net._params_from_host(params))

    @classmethod
    def _unconfigured(cls, *, backend: str, device: Any, dtype: Any) -> Model:
        """A ``cls`` with its backend, device and dtype but no architecture yet: what
        ``from_params`` starts from before reading the sizes off the given arrays."""
        net = cls.__new__(cls)
        Model.__init__(net, backend=backend, device=device, dtype=dtype)
        return net

    def _given(self, arrays: dict[str, Array]) -> Model:
        """Hold ``arrays`` (checked by the ``params`` setter) as given parameters, not
        drawn by an initialiser; return ``self``."""
        self.init, self.weight_init_std, self.seed = "given", None, None
        self.init_scale = None
        self.params = arrays
        return self

    # -- parameters ---------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Array]:
        """The parameters, a dict of backend arrays (course names: ``W1``, ``b1``, ...)."""
        return self._params

    @params.setter
    def params(self, params: Mapping[str, Array]) -> None:
        """Replace every parameter at once: arrays of the model's backend, device, dtype
        and shapes, all finite (a sync point: a ``NonFiniteError`` otherwise); on any
        refusal the model keeps its own."""
        self.check_params(params)
        for key, value in params.items():
            self._check_finite(value, key)
        self._params = dict(params)

    def check_params(self, params: Any) -> None:
        """Refuse ``params`` unless it is a dict with exactly this model's parameter names,
        each an array of the model's backend, device, dtype and shape. Metadata only: no
        value is read (the ``params`` setter adds the finiteness check)."""
        self.core.check_params(params)

    def check_batch(self, x: Any, d: Any) -> None:
        """Refuse a batch the core cannot take: inputs and floating targets of the
        model's shapes, backend, device and dtype. Metadata only (``make_step``'s check)."""
        self.core.check_batch(x, d)

    @functools.cached_property
    def core(self) -> Core:
        """This model's math as pure functions of explicit parameters
        (``core.forward(params, x)``, ``core.loss``, ``core.backward``,
        ``core.value_and_grad``; see ``xpnn.nn.core``): unchecked, and holding no
        parameters, so a compiled step built on it keeps neither the model nor its
        parameters alive."""
        return self.core_class(
            self.backend,
            self.xp,
            self.device,
            self.dtype,
            get_backend(self.backend).scan,
            dict(self.param_shapes),
            **self._architecture(),
        )

    core_class: type[Core] = Core
    """The class of ``core``."""

    def _architecture(self) -> dict[str, Any]:
        """What ``core_class`` takes beyond what every core holds."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        """The unchecked methods of earlier versions (``forward_unchecked(x, params)``,
        ...), with a ``DeprecationWarning``: they are ``model.core``'s now."""
        if name not in _RENAMED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        warnings.warn(
            f"model.{name} is deprecated; use model.core.{_RENAMED[name]}"
            + (" (params first: core.forward(params, x))" if name == "forward_unchecked" else ""),
            DeprecationWarning,
            stacklevel=2,
        )
        if name == "forward_unchecked":
            return lambda x, params, h0=None: self.core.forward(params, x, h0)
        return getattr(self.core, _RENAMED[name])

    def asarray(self, x: Any, *, name: str = "x", chunks: int | None = None) -> Array:
        """``x`` (a host array, nested lists, or an array of any backend on the host) as
        an array of this model's backend, device and dtype.

        The backend lays the batch out for the work (``Backend.place_batch``): on dask
        it is cut into chunks of ``chunks`` rows along the batch axis (default: equal
        pieces of at most 16384 rows); other backends ignore ``chunks``.

        Raises
        ------
        XpnnTypeError
            ``x`` is not real numbers (complex, strings, ragged lists), or is a NumPy
            matrix, a masked array or a sparse tensor, whose meaning a plain array loses.
        """
        x = check_host_input(x, name, self.backend)
        try:
            x = self.xp.asarray(x, dtype=self.dtype, device=self.device)
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            msg = f"{name} cannot be converted to a {self.backend} array: {shown(str(exc))}"
            raise XpnnTypeError(msg) from None
        # RNN sequences (T, B, F) have their batch on axis 1; targets (B, O) on axis 0
        axis = self.batch_axis if x.ndim > self.batch_axis + 1 else 0
        return get_backend(self.backend).place_batch(x, axis, chunks)

    def _params_from_host(self, host: Mapping[str, Any]) -> dict[str, Array]:
        """``from_params``'s input as arrays of the model (the ``params`` setter checks
        their shapes and finiteness)."""
        if not isinstance(host, Mapping):
            msg = f"params must be a dict of parameter arrays, got {type(host).__name__}"
            raise XpnnTypeError(msg)
        return {str(key): self.asarray(value, name=str(key)) for key, value in host.items()}

    # -- input checks -------------------------------------------------------------------

    def _check_array(
        self, x: Any, name: str, *, shape: tuple[int | None, ...], integer_ok: bool = False
    ) -> Array:
        """``check_array`` with this model's backend, device and dtype."""
        return check_array(self, x, name, shape=shape, integer_ok=integer_ok)

    def _check_labels(self, d: Array, name: str, n_classes: int) -> None:
        """Refuse integer labels outside ``0 .. n_classes - 1`` (a sync point, like
        ``_check_finite``); floating targets pass."""
        xp = self.xp
        if not xp.isdtype(d.dtype, "integral"):
            return
        if not bool(xp.all((d >= 0) & (d < n_classes))):
            msg = f"{name} holds class labels outside 0 .. {n_classes - 1}"
            raise XpnnValueError(msg)

    def _check_cache(self, cache: Any, cache_type: type) -> None:
        """Refuse a cache that is not a ``cache_type`` made by a model of this one's
        shapes, backend, device and dtype."""
        if not isinstance(cache, cache_type):
            msg = (
                f"cache must be the {cache_type.__name__} returned by forward, got "
                f"{type(cache).__name__}"
            )
            raise XpnnValueError(msg)
        if set(cache.params) != set(self.param_shapes):
            msg = (
                f"cache comes from a model with parameters {sorted(cache.params)}, not "
                f"{sorted(self.param_shapes)}"
            )
            raise XpnnValueError(msg)
        for key, value in cache.params.items():
            self._check_array(value, f"cache.params[{key!r}]", shape=self.param_shapes[key])

    def _check_finite(self, x: Array, name: str) -> None:
        """Refuse NaN or infinity in ``x``. A deliberate sync point: call it from public
        entry points only, never inside a training loop."""
        if self.xp.isdtype(x.dtype, "integral"):
            return
        if not bool(self.xp.all(self.xp.isfinite(x))):
            msg = f"{name} contains NaN or infinity"
            raise NonFiniteError(msg)


def is_integer_array(x: Any) -> bool:
    """Whether ``x`` is an array (of any backend) of integers, such as class labels."""
    try:
        xp = namespace_of(x)
    except XpnnTypeError:
        return False
    return xp.isdtype(x.dtype, "integral")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)
