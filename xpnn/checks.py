"""Argument checks, one place: each value is checked once, where it enters xpnn (a
public function, a CLI option, a file), and raises an ``XpnnError`` that names it. Inner
layers trust what the boundary checked."""

from __future__ import annotations

import math
import numbers
from typing import Any

from xpnn.errors import XpnnTypeError, XpnnValueError, shown

MAX_SIZE = 2**31 - 1  # a layer width past this is a typo, and past NumPy's limits soon after


def check_size(value: Any, name: str) -> int:
    """A size argument: an ``int`` from 1 to ``MAX_SIZE``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        msg = f"{name} must be an integer from 1 to {MAX_SIZE}, got {shown(value)}"
        raise XpnnValueError(msg)
    return value


def check_positive(value: Any, name: str) -> float:
    """A real number that is positive and finite as a float, such as ``weight_init_std``
    (``10**400`` is an ``int`` no float can hold: refused, not an ``OverflowError``)."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        msg = f"{name} must be a positive finite number, got {shown(value)}"
        raise XpnnValueError(msg)
    return number


def check_history(history: Any, *, before: int | None = None) -> list[tuple[int, float]]:
    """A loss history as a new list: a list or tuple (None for empty) of ``(iteration,
    finite loss)`` pairs, iterations increasing (and below ``before``, the step a state
    has reached, where given)."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        msg = (
            "history must be a list of (iteration, loss) pairs (a TrainState's history), "
            f"got {type(history).__name__}"
        )
        raise XpnnTypeError(msg)
    out: list[tuple[int, float]] = []
    for entry in history:
        ok = isinstance(entry, (list, tuple)) and len(entry) == 2
        if ok:
            i, loss = entry
            ok = isinstance(i, numbers.Integral) and isinstance(loss, numbers.Real)
            ok = ok and not isinstance(i, bool) and not isinstance(loss, bool)
            ok = ok and 0 <= i < (math.inf if before is None else before)
            ok = ok and math.isfinite(loss) and (not out or i > out[-1][0])
        if not ok:
            below = "" if before is None else f" below {before}"
            msg = (
                "history must hold (iteration, finite loss) pairs with increasing "
                f"iterations{below}, got {shown(entry)}"
            )
            raise XpnnValueError(msg)
        out.append((int(i), float(loss)))
    return out
