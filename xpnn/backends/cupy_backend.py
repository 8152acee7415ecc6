"""CuPy, through array-api-compat's wrapper: NVIDIA GPUs only."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends.base import Array, ArrayNamespace, Backend
from xpnn.errors import BackendUnavailable


class CupyBackend(Backend):
    name = "cupy"
    module = "cupy"
    extra = "cuda12"
    install_hint = 'pip install "xpnn[cuda12]" or "xpnn[cuda13]", on a machine with an NVIDIA GPU'
    gpu_only = True

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        # importable without a GPU, but it cannot allocate there
        try:
            count = module.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError, or no driver library at all
            msg = f"cupy: no CUDA device ({type(exc).__name__}: {exc})"
            raise BackendUnavailable(msg) from None
        if count < 1:
            raise BackendUnavailable("cupy: no CUDA device (the CUDA runtime reports 0 devices)")
        return importlib.import_module("array_api_compat.cupy")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_cupy_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    def device_name(self, device: Any) -> str | None:
        cupy = sys.modules.get("cupy")
        if cupy is None or not isinstance(device, cupy.cuda.Device):
            return None
        return f"cuda:{device.id}"

    def find_device(self, xp: ArrayNamespace, device: Any) -> Any | None:
        return None if isinstance(device, str) else device  # a cupy.cuda.Device is taken as is

    def to_numpy(self, x: Array) -> np.ndarray:
        return x.get()

    def gpu_float32_matmul(self) -> str | None:
        return f"cupy: CUPY_TF32={os.environ.get('CUPY_TF32', '0')!r} (1 enables TF32)"
