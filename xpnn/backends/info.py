"""What ``xpnn backends`` reports: each backend's version, usability and default device."""

from __future__ import annotations

from dataclasses import dataclass

from xpnn.backends.devices import default_device, device_name
from xpnn.backends.registry import BACKENDS, get_backend, get_namespace
from xpnn.errors import BackendUnavailable


@dataclass(frozen=True)
class BackendInfo:
    """What ``xpnn backends`` prints for one backend."""

    name: str
    version: str | None
    usable: bool
    reason: str
    default_device: str | None
    scheduler: str | None = None
    """Where a lazy backend (dask) runs its work; None for the eager ones."""


def backend_info(name: str) -> BackendInfo:
    """Version, usability (with the reason when not usable) and default device of ``name``."""
    backend = get_backend(name)
    try:
        xp = get_namespace(name)
    except BackendUnavailable as exc:
        return BackendInfo(name, None, False, str(exc), None)
    device = device_name(default_device(xp))
    return BackendInfo(name, backend.version(), True, "", device, backend.scheduler())


def available_backends() -> list[str]:
    """Names of the backends usable here, in the order of ``BACKENDS``."""
    return [name for name in BACKENDS if backend_info(name).usable]
