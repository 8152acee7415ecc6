"""Argument checks, one place: each value is checked once, where it enters xpnn (a
public function, a CLI option, a file), and raises an ``XpnnError`` that names it. Inner
layers trust what the boundary checked."""

from __future__ import annotations

import math
from typing import Any

from xpnn.errors import XpnnValueError, shown

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
