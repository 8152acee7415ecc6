"""array-api-strict: the standard and nothing more, the referee of model code."""

from __future__ import annotations

import re
import sys
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends.base import Array, ArrayNamespace, Backend


class ArrayApiStrictBackend(Backend):
    name = "array_api_strict"
    module = "array_api_strict"
    extra = "strict"
    install_hint = 'pip install "xpnn[strict]"'

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        return module

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_array_api_strict_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_array_api_obj(x) and self.is_namespace(
            array_api_compat.array_namespace(x)
        )

    def device_name(self, device: Any) -> str | None:
        strict = sys.modules.get("array_api_strict")
        if strict is None or not isinstance(device, strict.Device):
            return None
        # the one device class without a public name: its repr is Device('NAME')
        match = re.fullmatch(r"array_api_strict\.Device\('(.+)'\)", repr(device))
        return match.group(1) if match else repr(device)

    def to_numpy(self, x: Array) -> np.ndarray:
        strict = sys.modules["array_api_strict"]
        return np.asarray(array_api_compat.to_device(x, strict.Device("CPU_DEVICE")))
