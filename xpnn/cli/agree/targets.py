"""Which backend and device pairs ``xpnn agree`` compares with the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xpnn.backends import (
    BACKENDS,
    COMPILERS,
    backend_info,
    default_device,
    device_name,
    get_backend,
    get_namespace,
    resolve_device,
)
from xpnn.cli.agree.runs import REFERENCE
from xpnn.errors import BackendUnavailable


def gpu_required() -> list[str]:
    """The backends ``--gpu`` requires: the GPU-only ones (``Backend.gpu_only``: CuPy).
    Every other backend with a GPU device (``Backend.gpu_device``: PyTorch's cuda,
    JAX's gpu) is compared there when it can use it, and skipped with the reason
    otherwise."""
    return [name for name in BACKENDS if get_backend(name).gpu_only]


@dataclass(frozen=True)
class Target:
    """A backend on a device, its step eager or compiled (``jax.jit``, ``torch.compile``)."""

    backend: str
    device: Any
    version: str
    compiled: bool = False

    @property
    def device_label(self) -> str:
        return device_name(self.device)

    @property
    def label(self) -> str:
        """The table's backend column: ``jax``, or ``jax+jax.jit`` for the compiled step."""
        return f"{self.backend}+{COMPILERS[self.backend]}" if self.compiled else self.backend


def _probe(backend: str, device: str) -> Any:
    """The device object of ``backend`` called ``device``, after allocating an array on
    it; raise ``BackendUnavailable`` saying why not."""
    xp = get_namespace(backend)
    try:
        dev = resolve_device(xp, device)
        xp.zeros((1,), dtype=xp.float32, device=dev)
    except Exception as exc:  # no CUDA build, no driver, no such device
        msg = f"{backend} cannot use device {device!r} ({type(exc).__name__}: {exc})"
        raise BackendUnavailable(msg) from None
    return dev


def targets(
    names: Sequence[str], *, gpu: bool, compiled: Sequence[str] = ()
) -> tuple[list[Target], list[str]]:
    """The backend/device pairs to compare with the reference, and lines saying which
    backends were skipped and why. Each backend in ``compiled`` comes twice, eager and
    then compiled. With ``gpu``, the GPU-only backends are required
    (``BackendUnavailable`` if one cannot run), and every backend is also compared on its
    GPU device where it can use it."""
    found: list[Target] = []
    skipped: list[str] = []
    if gpu:
        required = gpu_required()
        if any(name not in names for name in required):
            msg = f"--gpu needs {' and '.join(required)} among --backends"
            raise BackendUnavailable(msg)
        for name in required:
            info = backend_info(name)
            if not info.usable:
                raise BackendUnavailable(f"--gpu needs an NVIDIA GPU; {info.reason}")
    for name in names:
        info = backend_info(name)
        if not info.usable:
            if gpu and name in gpu_required():
                raise BackendUnavailable(f"--gpu needs {name}: {info.reason}")
            skipped.append(f"skipped {name}: {info.reason}")
            continue
        version = info.version or "?"
        xp = get_namespace(name)
        devices = [default_device(xp)]
        spec = get_backend(name).gpu_device
        if gpu and spec is not None:
            try:
                devices.append(_probe(name, spec))
            except BackendUnavailable as exc:
                if name in gpu_required():
                    raise
                skipped.append(f"skipped {name} on {spec}: {exc}")
        seen: list[str] = []
        for dev in devices:
            if device_name(dev) in seen:
                continue
            seen.append(device_name(dev))
            if name == REFERENCE and device_name(dev) == "cpu":
                continue  # the reference itself
            found.append(Target(name, dev, version))
            if name in compiled:
                found.append(Target(name, dev, version, compiled=True))
    return found, skipped
