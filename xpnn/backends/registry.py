"""The registry: which backends exist, and loading them.

Adding a backend is one file (a ``Backend`` subclass, see ``base.py``) and one line in
``_BUILTIN`` below. ``register`` and ``unregister`` add and remove one at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from xpnn.backends.array_api_strict_backend import ArrayApiStrictBackend
from xpnn.backends.base import ArrayNamespace, Backend
from xpnn.backends.cupy_backend import CupyBackend
from xpnn.backends.dask_backend import DaskBackend
from xpnn.backends.jax_backend import JaxBackend
from xpnn.backends.numpy_backend import NumpyBackend
from xpnn.backends.torch_backend import TorchBackend
from xpnn.errors import XpnnTypeError, XpnnValueError, shown

_BUILTIN: tuple[Backend, ...] = (
    NumpyBackend(),
    ArrayApiStrictBackend(),
    TorchBackend(),
    JaxBackend(),
    CupyBackend(),
    DaskBackend(),
)
_REGISTRY: dict[str, Backend] = {backend.name: backend for backend in _BUILTIN}
_PLAIN = Backend()
"""The defaults, for a namespace or name no registered backend claims."""


_REQUIRED = ("namespace", "is_namespace", "is_array")
"""The hooks a backend must implement; the protocol's defaults cover the rest."""


def register(backend: Backend) -> None:
    """Add ``backend``, an instance of a ``Backend`` subclass, after the registered ones.

    Raises
    ------
    XpnnTypeError
        ``backend`` is not a ``Backend`` instance (a class, a name, None), or does not
        implement ``namespace``, ``is_namespace`` and ``is_array``.
    XpnnValueError
        Its ``name`` is not an identifier (``"my_lib"``), or is taken; its ``module`` is
        not a module name. Nothing is registered.
    """
    if not isinstance(backend, Backend):
        what = f"the class {backend.__name__}" if isinstance(backend, type) else shown(backend)
        msg = f"register takes a Backend instance (Backend subclass()), got {what}"
        raise XpnnTypeError(msg, argument="backend")
    missing = [hook for hook in _REQUIRED if getattr(type(backend), hook) is getattr(Backend, hook)]
    if missing:
        msg = f"backend {type(backend).__name__} does not implement {', '.join(missing)}"
        raise XpnnTypeError(msg, argument="backend")
    name, module = backend.name, backend.module
    if not isinstance(name, str) or not name.isidentifier():
        msg = f"a backend's name must be an identifier such as 'my_lib', got {shown(name)}"
        raise XpnnValueError(msg, argument="backend")
    if name in _REGISTRY:
        msg = f"a backend named {name!r} is registered already; unregister it first"
        raise XpnnValueError(msg, argument="backend")
    if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
        msg = f"backend {name}: module must name the library to import, got {shown(module)}"
        raise XpnnValueError(msg, argument="backend")
    _REGISTRY[name] = backend


def unregister(name: str) -> None:
    """Remove backend ``name``."""
    check_name(name)
    del _REGISTRY[name]


def backends() -> list[Backend]:
    """The registered backends, in registration order."""
    return list(_REGISTRY.values())


class _Names(Sequence[str]):
    """The registered backend names, in order: a live, read-only sequence."""

    def __getitem__(self, index: Any) -> Any:
        return tuple(_REGISTRY)[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


class _Compilers(Mapping[str, str]):
    """Backend name -> what compiles its step, for the backends that compile, in
    alphabetical order: a live, read-only mapping."""

    def _table(self) -> dict[str, str]:
        compiling = [b for b in _REGISTRY.values() if b.compiler is not None]
        return {b.name: b.compiler for b in sorted(compiling, key=lambda b: b.name)}

    def __getitem__(self, name: str) -> str:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(self._table())


BACKENDS: Sequence[str] = _Names()
"""The registered backend names: numpy, array_api_strict, torch, jax, cupy, dask."""
COMPILERS: Mapping[str, str] = _Compilers()
"""The backends that compile a step, and with what: ``{"jax": "jax.jit", "torch": ...}``."""


def check_name(name: str) -> None:
    """``XpnnValueError`` unless ``name`` is a registered backend."""
    if not isinstance(name, str) or name not in _REGISTRY:
        msg = f"unknown backend {shown(name)}; expected one of {', '.join(_REGISTRY)}"
        raise XpnnValueError(msg, argument="backend")


def get_backend(name: str) -> Backend:
    """The registered backend called ``name`` (``XpnnValueError`` if there is none)."""
    check_name(name)
    return _REGISTRY[name]


def backend_or_plain(name: str) -> Backend:
    """The backend called ``name``, or the protocol's defaults for an unknown name."""
    return _REGISTRY.get(name, _PLAIN) if isinstance(name, str) else _PLAIN


def backend_of(xp: ArrayNamespace) -> Backend:
    """The backend whose namespace ``xp`` is, or the protocol's defaults."""
    return next((b for b in _REGISTRY.values() if b.is_namespace(xp)), _PLAIN)


def overriding(hook: str) -> list[Backend]:
    """The registered backends that override ``Backend.<hook>`` (whose answer can differ
    from the default), so a dispatch over arrays asks only those."""
    default = getattr(Backend, hook)
    return [b for b in _REGISTRY.values() if getattr(type(b), hook) is not default]


def install_hint(name: str) -> str:
    """What to run to install backend ``name``."""
    return get_backend(name).install_hint


def get_namespace(name: str) -> ArrayNamespace:
    """Return the array API namespace of backend ``name``.

    JAX's settings are process-wide, and xpnn changes two of them for your other JAX code
    too: loading JAX sets ``jax_default_matmul_precision`` to ``"highest"`` (full float32
    matmuls on GPUs, not TF32) unless you have set a precision yourself, and the first
    float64 model turns on ``jax_enable_x64``. JAX float32-only use keeps 32-bit defaults.

    Raises
    ------
    BackendUnavailable
        The backend is not installed or cannot run here; the message says why and what
        to install.
    """
    return get_backend(name).load()


def backend_name(xp: ArrayNamespace) -> str:
    """The backend name of a namespace (from ``get_namespace`` or ``array_namespace``)."""
    backend = backend_of(xp)
    return xp.__name__ if backend is _PLAIN else backend.name


def backend_odd_array(x: Any) -> str | None:
    """Why ``x``, an array of a backend's library, would lose its meaning as a plain array
    (a sparse torch tensor), or None."""
    for backend in overriding("odd_array"):
        reason = backend.odd_array(x)
        if reason is not None:
            return reason
    return None


def gpu_float32_matmul(name: str) -> str | None:
    """How backend ``name`` computes float32 matmuls on a GPU now, as one line for a
    report (TF32 or full float32, and the setting that decides it); None for a backend
    without such a setting, or one not loaded."""
    return backend_or_plain(name).gpu_float32_matmul()


def set_cpu_threads(name: str, n: int | None) -> int | None:
    """Set backend ``name``'s intra-op CPU threads to ``n`` where it has such a setting
    (PyTorch, once loaded); return the previous number, or None where nothing changed."""
    return None if n is None else backend_or_plain(name).set_cpu_threads(n)
