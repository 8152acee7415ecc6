"""The host side: NumPy, where seeds are drawn and host data is read before it moves to a
backend. Model code never imports NumPy; what it needs of the host lives here, in the
backend layer: the random generator every seed goes through (so the same seed gives the
same weights and batches on every backend), the conversion of host input, and the float
error state of a training run."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends.registry import backend_odd_array
from xpnn.errors import XpnnTypeError, XpnnValueError, shown


def host_rng(seed: int | None) -> np.random.Generator:
    """The host random generator every initialiser and data stream draws from.

    Raises
    ------
    XpnnValueError
        ``seed`` is not a non-negative integer (or a sequence of them, or None).
    """
    if isinstance(seed, (bool, float, str, bytes)):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg, argument="seed")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg, argument="seed") from None


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
        raise XpnnTypeError(f"{cannot}: {odd}", argument=name)
    if array_api_compat.is_array_api_obj(x) and not isinstance(x, np.ndarray):
        dtype = x.dtype
        kinds = ("real floating", "integral", "bool")
        if not array_api_compat.array_namespace(x).isdtype(dtype, kinds):
            msg = f"{cannot}: it has dtype {dtype}; expected real numbers"
            raise XpnnTypeError(msg, argument=name)
        return x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            host = np.asarray(x)
    except (ValueError, TypeError, OverflowError, RecursionError, Warning) as exc:
        msg = f"{cannot}: not an array of numbers ({type(exc).__name__}: {str(exc)[:80]})"
        raise XpnnTypeError(msg, argument=name) from None
    if host.dtype.kind not in "biuf":
        what = "complex" if host.dtype.kind == "c" else str(host.dtype)
        msg = f"{cannot}: it holds {what} values; expected real numbers"
        raise XpnnTypeError(msg, argument=name)
    return host


@contextmanager
def float_errors_ignored() -> Iterator[None]:
    """Silence NumPy's overflow and invalid-value warnings for a training run: a run whose
    numbers stop being finite ends in ``TrainingDiverged``, which says what to try."""
    with np.errstate(all="ignore"):
        yield
