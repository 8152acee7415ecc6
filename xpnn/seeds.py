"""Seeds: the host random generator that every initialiser and data stream draws from, so
the same seed gives the same weights and batches on every backend."""

from __future__ import annotations

import numpy as np

from xpnn.errors import XpnnValueError, shown


def host_rng(seed: int | None) -> np.random.Generator:
    """The host random generator every initialiser and data stream draws from.

    Raises
    ------
    XpnnValueError
        ``seed`` is not a non-negative integer (or a sequence of them, or None).
    """
    if isinstance(seed, (bool, float, str, bytes)):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg)
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg) from None
