"""The error metric of the agreement runs and the rows it fills."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from xpnn.cli.agree.runs import Outcome

HostArray = Any  # a numpy.ndarray

TOLERANCES = {"float64": 1e-9, "float32": 1e-4}  # on rel, for the losses and the params

RELATIVE = (
    "rel = max|x - ref| / max|ref| per array (the loss trajectory of every step is one "
    "array; params: the largest over the parameter arrays); abs = max|x - ref|"
)


def difference(x: HostArray, ref: HostArray) -> tuple[float, float]:
    """``(max|x - ref|, max|x - ref| / max|ref|)``; NaN where shapes differ or values are
    not finite (which never passes)."""
    if x.shape != ref.shape:
        return math.nan, math.nan
    err, scale = float(abs(x - ref).max()), float(abs(ref).max())
    if not (math.isfinite(err) and math.isfinite(scale)):  # a NaN or inf anywhere
        return math.nan, math.nan
    return err, (err / scale if scale > 0 else err)


@dataclass
class Row:
    """One line of the table (and one object of ``--json``)."""

    backend: str
    version: str
    device: str
    dtype: str
    run: str
    steps: int
    reference: str
    loss_abs: float = math.nan
    loss_rel: float = math.nan
    param_abs: float = math.nan
    param_rel: float = math.nan
    first_step_rel: float = math.nan  # rel of the step-0 loss alone: one forward pass
    tolerance: float = math.nan
    status: str = "FAIL"  # PASS, FAIL, ERROR or INFO (not judged)
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)


def compare(row: Row, got: Outcome, ref: Outcome, *, judged: bool = True) -> Row:
    """Fill ``row`` with the differences of ``got`` from ``ref``."""
    row.loss_abs, row.loss_rel = difference(got.losses, ref.losses)
    if got.losses.shape == ref.losses.shape and ref.losses[0] != 0:
        row.first_step_rel = abs(got.losses[0] - ref.losses[0]) / abs(ref.losses[0])
    diffs = [difference(got.params[k], ref.params[k]) for k in ref.params]
    row.param_abs = max(a for a, _ in diffs)
    row.param_rel = max(r for _, r in diffs)
    if any(math.isnan(v) for v in (*(a for a, _ in diffs), *(r for _, r in diffs))):
        row.param_abs = row.param_rel = math.nan
    row.seconds = got.seconds
    if not judged:
        row.status = "INFO"
        return row
    ok = row.loss_rel <= row.tolerance and row.param_rel <= row.tolerance  # NaN fails
    row.status = "PASS" if ok else "FAIL"
    return row
