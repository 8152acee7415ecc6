"""PyTorch, through array-api-compat's wrapper; steps compile with ``torch.compile``."""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends.base import Array, ArrayNamespace, Backend
from xpnn.errors import XpnnValueError

AUTO_TORCH_STEPS = 100_000
"""``compile="auto"`` compiles on PyTorch only for runs of at least this many steps: a
``torch.compile`` costs 10-40 s, and saves well under a millisecond a step on a CPU."""


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    extra = "torch"
    install_hint = (
        "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu (the "
        'CPU build, as nox installs it), or pip install "xpnn[torch]" (on Linux the CUDA '
        "build, GBs)"
    )
    compiler = "torch.compile"
    gpu_device = "cuda"

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        return importlib.import_module("array_api_compat.torch")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_torch_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def find_device(self, xp: ArrayNamespace, device: Any) -> Any | None:
        import torch

        if not isinstance(device, (str, torch.device)):
            return None
        try:  # allocating checks that the device exists and gives its index ("cuda" -> cuda:0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolved = torch.empty(0, device=torch.device(device)).device
        except (RuntimeError, AssertionError, ValueError):  # AssertionError: no CUDA build
            return None
        if resolved.type == "meta":
            msg = "torch's meta device holds shapes but no values; use cpu or cuda"
            raise XpnnValueError(msg)
        return resolved

    def to_numpy(self, x: Array) -> np.ndarray:
        return x.detach().cpu().numpy()

    def odd_array(self, x: Any) -> str | None:
        if not type(x).__module__.startswith("torch") or getattr(x, "layout", None) is None:
            return None
        import torch

        if x.layout != torch.strided:
            return f"it is a torch tensor of layout {x.layout}; pass x.to_dense()"
        return None

    def gpu_float32_matmul(self) -> str | None:
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        tf32 = torch.backends.cuda.matmul.allow_tf32
        precision = torch.get_float32_matmul_precision()
        return (
            f"torch cuda float32 matmul: allow_tf32={tf32}, "
            f"float32_matmul_precision={precision!r}"
            + (" (TF32 products)" if tf32 or precision != "highest" else "")
        )

    def set_cpu_threads(self, n: int) -> int | None:
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        return old

    def auto_compiles(self, *, steps: int | None) -> bool:
        return steps is not None and steps >= AUTO_TORCH_STEPS

    def compile_step(self, fn: Callable, *, device: Any) -> Callable:
        import torch

        # one graph per shape (no dynamic shapes); CUDA graphs on a GPU (not verified here)
        on_gpu = getattr(device, "type", None) == "cuda"
        return torch.compile(
            _own_code(fn), fullgraph=True, dynamic=False, mode="reduce-overhead" if on_gpu else None
        )


def _own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own. Dynamo keeps compiled graphs on the code
    object, at most ``torch._dynamo.config.recompile_limit`` (8) of them; every step
    ``build_step`` makes shares one code, so without this the ninth compiled step of a
    process (another model, shape or optimiser) would fail under ``fullgraph=True``."""
    if not isinstance(fn, types.FunctionType):
        return fn
    own = types.FunctionType(
        fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    own.__kwdefaults__, own.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    return own
