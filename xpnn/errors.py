"""The xpnn error hierarchy, and the one set of argument validators.

Every error xpnn raises on purpose is an ``XpnnError``. Each class also derives from the
built-in exception a Python user would expect, so ``except ValueError`` keeps working.
Messages name the argument, what was expected and what arrived; ``error.argument`` holds
the argument's name where one argument is at fault (the command line turns it into the
option's flag).

The validators below are the only ones: a value is checked once, where it enters xpnn (a
public function, a settings object, a file), by one of them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


class XpnnError(Exception):
    """Base class of every error xpnn raises on purpose.

    Attributes
    ----------
    argument : str or None
        The name of the argument at fault, where one is (``"lr"``, ``"hidden_size"``).
    """

    def __init__(self, *args: object, argument: str | None = None) -> None:
        super().__init__(*args)
        self.argument = argument


class XpnnValueError(XpnnError, ValueError):
    """A value is wrong: a shape, a size, a name, a non-finite number."""


class XpnnTypeError(XpnnError, TypeError):
    """An array is of the wrong kind: another backend, another device, a non-floating dtype."""


class XpnnAttributeError(XpnnError, AttributeError):
    """An attribute cannot be set: the object is frozen (an optimiser's hyperparameters)."""


class NonFiniteError(XpnnValueError):
    """An array holds NaN or infinity where only finite numbers may be (a model's
    parameters, its input)."""


class BackendUnavailable(XpnnValueError):
    """The backend cannot run here; the message says why and what to install."""


class TrainingDiverged(XpnnError, FloatingPointError):
    """Training met a non-finite loss; ``params`` holds the last finite parameters.

    Attributes
    ----------
    iteration : int
        The iteration at which the non-finite loss was seen.
    params : dict
        The parameters at the last check that found a finite loss.
    history : list of (int, float)
        The ``(iteration, loss)`` readings logged before the divergence.
    state : dict
        The optimiser state that goes with ``params``.
    good_step : int or None
        The number of iterations done at ``params``: the last finite reading's iteration
        (or the run's first iteration, when no reading was finite).
    cause : str
        What was not finite, in words (``"the loss at iteration 7 is nan"``).
    metrics : dict
        What the run measured before it diverged, where it measures along the way (a
        course run's test curve); empty otherwise.
    """

    def __init__(
        self,
        msg: str,
        *,
        iteration: int,
        params: dict,
        history: list,
        state: dict | None = None,
        good_step: int | None = None,
        cause: str = "",
    ) -> None:
        super().__init__(msg)
        self.cause = cause or f"the loss at iteration {iteration} is not finite"
        self.metrics: dict = {}
        self.iteration = iteration
        self.params = params
        self.history = history
        self.state = {} if state is None else state
        self.good_step = good_step


class CheckpointError(XpnnValueError):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model."""


class OutputError(XpnnError, OSError):
    """An output (a figure, a JSON summary, a results file) cannot be written: a
    read-only folder, a full disk, a folder where the file should be. The message names
    the path and the cause."""


# -- the validators ------------------------------------------------------------------------

SHOWN = 80  # at most this many characters of a user's value go into a message
MAX_SIZE = 2**31 - 1  # a layer width past this is a typo, and past NumPy's limits soon after


def shown(value: object) -> str:
    """``repr(value)`` cut to ``SHOWN`` characters, for error messages: a 5,000-character
    name must not give a 5,000-character message."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # a deeply nested list; an int past repr's digits
        return f"<{type(value).__name__}>"
    if len(text) <= SHOWN:
        return text
    return f"{text[: SHOWN - 20]}...({len(text)} characters)"


def _refuse(name: str, expected: str, value: object) -> XpnnValueError:
    return XpnnValueError(f"{name} must be {expected}, got {shown(value)}", argument=name)


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy one), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """Whether ``value`` is a finite real number (``10**400`` is not: no float holds it)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_integer(value: Any, name: str, *, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """An integer from ``minimum`` to ``maximum`` (a size, a count, an iteration), as an
    ``int``."""
    if not is_integer(value) or not minimum <= value <= maximum:
        too_large = is_integer(value) and value > maximum
        raise _refuse(name, _range_text(minimum, maximum, too_large), value)
    return int(value)


def _range_text(minimum: int, maximum: int, too_large: bool = False) -> str:
    """What the value must be: the top named where it is not ``MAX_SIZE`` (a limit no
    one means to reach) or where the value is past it."""
    if maximum == MAX_SIZE and not too_large:
        return f"an integer of at least {minimum}"
    return f"an integer from {minimum} to {maximum}"


def check_positive(value: Any, name: str) -> float:
    """A positive, finite real number (a learning rate, a scale), as a ``float``."""
    if not is_real(value) or value <= 0:
        raise _refuse(name, "a positive finite number", value)
    return float(value)


def check_finite(value: Any, name: str) -> float:
    """A finite real number, as a ``float``."""
    if not is_real(value):
        raise _refuse(name, "a finite number", value)
    return float(value)


def check_fraction(value: Any, name: str, *, zero: bool = True) -> float:
    """A number in ``[0, 1)`` (``(0, 1)`` without ``zero``), as a ``float``: a momentum,
    a decay rate."""
    low_ok = is_real(value) and (value >= 0 if zero else value > 0)
    if not low_ok or value >= 1:
        raise _refuse(name, "in [0, 1)" if zero else "in (0, 1)", value)
    return float(value)


def check_choice(
    value: Any, name: str, choices: Sequence[str], *, argument: str | None = None
) -> str:
    """``value`` if it is one of the names ``choices``; else an ``XpnnValueError`` that
    names ``name`` (``"hidden activation"``), shows the value cut short and lists the
    choices (a list or dict given as a name is refused here, not by a ``TypeError``).
    Its ``argument`` is ``argument`` where the parameter's name differs from ``name``
    (``"hidden"``), else ``name``."""
    if isinstance(value, str) and value in choices:
        return value
    kind = "" if isinstance(value, str) else f" (a {type(value).__name__}, not a string)"
    msg = f"unknown {name} {shown(value)}{kind}; expected one of {', '.join(choices)}"
    raise XpnnValueError(msg, argument=argument or name)


def check_callback(value: Any, name: str) -> Any:
    """A function, or None."""
    if value is not None and not callable(value):
        msg = f"{name} must be a function or None, got {type(value).__name__}"
        raise XpnnTypeError(msg, argument=name)
    return value


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
        raise XpnnTypeError(msg, argument="history")
    out: list[tuple[int, float]] = []
    for entry in history:
        ok = isinstance(entry, (list, tuple)) and len(entry) == 2
        if ok:
            i, loss = entry
            ok = is_integer(i) and is_real(loss)
            ok = ok and 0 <= i < (math.inf if before is None else before)
            ok = ok and (not out or i > out[-1][0])
        if not ok:
            below = "" if before is None else f" below {before}"
            expected = f"(iteration, finite loss) pairs with increasing iterations{below}"
            raise _refuse("history", f"a list of {expected}", entry)
        out.append((int(i), float(loss)))
    return out
