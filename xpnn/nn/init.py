"""Weight initialisers, drawn on the host so every backend starts from the same numbers.

Each takes a host random generator (``numpy.random.Generator``, from
``xpnn.backends.host_rng``) and returns a host array of the given ``(fan_in, fan_out)``
shape; the model moves it to its backend with one ``asarray``. Biases start at zero.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.errors import XpnnValueError, check_choice

INITS = ("std", "xavier", "he")
RECURRENT_INITS = (*INITS, "identity")
"""The recurrent network's starts: ``identity`` (Le, Jaitly and Hinton, 2015, the IRNN)
starts its recurrent weights at a scaled identity and draws the others from ``std``."""


def draw_weight(rng: Any, shape: tuple[int, int], init: str, weight_init_std: float = 0.01) -> Any:
    """A ``(fan_in, fan_out)`` host array of standard normal draws, scaled by

    * ``std``: ``weight_init_std`` (the course's ``weight_init_std * randn``);
    * ``xavier``: ``1 / sqrt(fan_in)``;
    * ``he``: ``sqrt(2 / fan_in)``.
    """
    check_choice(init, "init", INITS)
    if init == "std":
        scale = weight_init_std
    elif init == "xavier":
        scale = 1.0 / math.sqrt(shape[0])
    else:
        scale = math.sqrt(2.0 / shape[0])
    try:
        return rng.standard_normal(shape) * scale
    except (MemoryError, ValueError) as exc:  # NumPy: cannot allocate, or too many elements
        count = math.prod(shape)
        msg = (
            f"a weight of shape {shape} ({count:,} numbers, {count * 8 / 2**30:.3g} GiB in "
            f"float64) cannot be made on this machine ({type(exc).__name__})"
        )
        raise XpnnValueError(msg) from None
