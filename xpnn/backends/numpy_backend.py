"""NumPy, through array-api-compat's wrapper: the reference backend."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import array_api_compat

from xpnn.backends.base import ArrayNamespace, Backend


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    install_hint = "pip install numpy"

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        return importlib.import_module("array_api_compat.numpy")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_numpy_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_numpy_array(x)

    def read_only(self, x: Any) -> Any:
        view = x.view()
        view.flags.writeable = False
        return view
