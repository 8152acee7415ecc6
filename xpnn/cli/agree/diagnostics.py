"""Why an agreement row may miss (or has missed) its tolerance: the backend settings
known to change float32 matmuls on a GPU, and where the difference starts."""

from __future__ import annotations

import math
from typing import Any

from xpnn.backends import device_name, gpu_float32_matmul
from xpnn.cli.agree.compare import Row
from xpnn.cli.agree.targets import Target

EPS = {"float32": 2.0**-23, "float64": 2.0**-52}  # machine epsilon
ROUNDING_ULPS = 64  # a one-pass difference beyond this many eps is not reduction order


def _is_gpu(device: Any) -> bool:
    label = device_name(device).lower()
    return "cuda" in label or "gpu" in label


def explain(row: Row, target: Target) -> list[str]:
    """Notes on ``row``: the float32 matmul mode of a GPU target, and for a failed row
    whether the first forward pass already differs beyond rounding."""
    notes = []
    if row.dtype == "float32" and _is_gpu(target.device):
        mode = gpu_float32_matmul(target.backend)
        if mode is not None:
            notes.append(mode)
    if row.status == "FAIL" and not math.isnan(row.first_step_rel):
        eps = EPS[row.dtype]
        ulps = row.first_step_rel / eps
        if ulps > ROUNDING_ULPS:
            notes.append(
                f"the first forward pass alone differs by rel {row.first_step_rel:.1e} "
                f"({ulps:.0f} x {row.dtype} eps): the arithmetic itself is less precise "
                "(a reduced-precision matmul such as TF32, or a transcendental "
                "implementation), not only rounding accumulated over the run"
            )
        else:
            notes.append(
                f"the first forward pass agrees to rounding (rel {row.first_step_rel:.1e}, "
                f"{ulps:.0f} x eps); the difference grows over the training steps "
                "(reduction order of matmul/sum, exp/tanh implementations)"
            )
    return notes
