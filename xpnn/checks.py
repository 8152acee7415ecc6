"""Argument checks, one place: each value is checked once, where it enters xpnn (a
public function, a CLI option, a file), and raises an ``XpnnError`` that names it. Inner
layers trust what the boundary checked."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends import backend_odd_array
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


def odd_array(x: Any) -> str | None:
    """Why ``x`` is an array whose meaning a plain array would lose, or None: a
    ``numpy.matrix`` (always 2-D, ``*`` multiplies matrices), a masked array (the mask
    would be dropped), or an odd array of a backend (a sparse torch tensor)."""
    if isinstance(x, np.matrix):
        return "it is a numpy.matrix; pass numpy.asarray(x)"
    if isinstance(x, np.ma.MaskedArray):
        return "it is a masked array; pass x.filled(value) or x[~x.mask]"
    return backend_odd_array(x)


def check_host_input(x: Any, name: str, target: str) -> Any:
    """``x`` made ready for ``xp.asarray``: host data (nested lists, scalars, NumPy
    arrays) become a NumPy array of real numbers; an array of a backend passes if its
    dtype is real. Refused with ``XpnnTypeError`` naming ``name``: complex numbers (their
    imaginary part would be dropped), strings and ragged lists, ``numpy.matrix`` (always
    2-D, ``*`` multiplies matrices), masked arrays (the mask would be dropped) and sparse
    torch tensors. ``target`` (a backend name) completes the messages."""
    cannot = f"{name} cannot be converted to a {target} array"
    odd = odd_array(x)
    if odd is not None:
        raise XpnnTypeError(f"{cannot}: {odd}")
    if array_api_compat.is_array_api_obj(x) and not isinstance(x, np.ndarray):
        dtype = x.dtype
        kinds = ("real floating", "integral", "bool")
        if not array_api_compat.array_namespace(x).isdtype(dtype, kinds):
            msg = f"{cannot}: it has dtype {dtype}; expected real numbers"
            raise XpnnTypeError(msg)
        return x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            host = np.asarray(x)
    except (ValueError, TypeError, OverflowError, RecursionError, Warning) as exc:
        msg = f"{cannot}: not an array of numbers ({type(exc).__name__}: {str(exc)[:80]})"
        raise XpnnTypeError(msg) from None
    if host.dtype.kind not in "biuf":
        what = "complex" if host.dtype.kind == "c" else str(host.dtype)
        msg = f"{cannot}: it holds {what} values; expected real numbers"
        raise XpnnTypeError(msg)
    return host


@contextmanager
def float_errors_ignored() -> Iterator[None]:
    """Silence NumPy's overflow and invalid-value warnings for a training run: a run whose
    numbers stop being finite ends in ``TrainingDiverged``, which says what to try."""
    with np.errstate(all="ignore"):
        yield


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
