"""The xpnn error hierarchy: every error xpnn raises on purpose is an ``XpnnError``.

Each class also derives from the built-in exception a Python user would expect, so
``except ValueError`` keeps working. Messages name the argument, what was expected and
what arrived.
"""

from __future__ import annotations


class XpnnError(Exception):
    """Base class of every error xpnn raises on purpose."""


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
        The ``(iteration, loss)`` pairs logged before the divergence.
    state : dict
        The optimiser state that goes with ``params``.
    good_step : int or None
        The number of iterations done at ``params``: the last finite reading's iteration
        (or the run's first iteration, when no reading was finite).
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
    ) -> None:
        super().__init__(msg)
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


SHOWN = 80  # at most this many characters of a user's value go into a message


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


def check_choice(value: object, what: str, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of the names ``choices``; else an ``XpnnValueError`` that
    names ``what`` (``"hidden activation"``), shows the value cut short and lists the
    choices (a list or dict given as a name is refused here, not by a ``TypeError``)."""
    if isinstance(value, str) and value in choices:
        return value
    kind = "" if isinstance(value, str) else f" (a {type(value).__name__}, not a string)"
    msg = f"unknown {what} {shown(value)}{kind}; expected one of {', '.join(choices)}"
    raise XpnnValueError(msg)
