"""NumPy, through array-api-compat's wrapper: the reference backend."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

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

    def unstack(self, a: Any) -> list[Any]:
        """``list(a)``: the views along axis 0, made in C (``xp.unstack`` goes through
        ``moveaxis``, and indexing step by step through Python)."""
        return list(a)

    def stack(self, parts: list[Any]) -> Any:
        """``concat`` then ``reshape``: in NumPy fewer calls than ``stack`` (which
        expands every part first)."""
        first = parts[0]
        if first.ndim == 0:
            return np.stack(parts)
        return np.concatenate(parts).reshape((len(parts), *first.shape))

    def read_only(self, x: Any) -> Any:
        if not isinstance(x, np.ndarray):  # a NumPy scalar (a 0-d result): immutable
            return x
        view = x.view()
        view.flags.writeable = False
        return view
