"""Which backend and device pairs ``xpnn agree`` compares with the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xpnn.agree.runs import REFERENCE
from xpnn.backends import (
    COMPILERS,
    backend_info,
    default_device,
    device_name,
    get_namespace,
    resolve_device,
)
from xpnn.errors import BackendUnavailable


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
    then compiled. With ``gpu``, CuPy and PyTorch on ``cuda`` are required
    (``BackendUnavailable`` if either cannot run)."""
    found: list[Target] = []
    skipped: list[str] = []
    if gpu:
        if "cupy" not in names or "torch" not in names:
            raise BackendUnavailable("--gpu needs cupy and torch among --backends")
        info = backend_info("cupy")
        if not info.usable:
            raise BackendUnavailable(f"--gpu needs an NVIDIA GPU; {info.reason}")
    for name in names:
        info = backend_info(name)
        if not info.usable:
            if gpu and name in ("cupy", "torch"):
                raise BackendUnavailable(f"--gpu needs {name}: {info.reason}")
            skipped.append(f"skipped {name}: {info.reason}")
            continue
        version = info.version or "?"
        xp = get_namespace(name)
        devices = [default_device(xp)]
        if gpu and name == "torch":
            devices.append(_probe("torch", "cuda"))  # raises when torch has no GPU
        if gpu and name == "jax":
            try:
                devices.append(_probe("jax", "gpu"))
            except BackendUnavailable as exc:
                skipped.append(f"skipped jax on gpu: {exc}")
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
