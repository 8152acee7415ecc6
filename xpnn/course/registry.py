"""The runs of ``xpnn train``: each run's name, its settings class and the function that
runs it. ``xpnn train``, ``xpnn sweep`` and ``xpnn agree`` read this one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xpnn.course import notebooks
from xpnn.course.settings import (
    AddingProblem,
    Backprop,
    BinaryAddition,
    Regression,
    Sine,
    SineWave,
    Training,
)


@dataclass(frozen=True)
class Run:
    """A run: its ``settings`` class (a frozen dataclass with ``resolve()``), ``run``,
    called as ``run(plan, echo=..., progress=...)`` with what ``settings.resolve()``
    returned (the notebooks' ``.planned``), and what ``xpnn train`` says of it: a
    ``summary`` line and a ``description``."""

    settings: type
    run: Callable[..., Any]
    summary: str
    description: str

    @property
    def trains(self) -> bool:
        """Whether the run trains (and so has the training options)."""
        return issubclass(self.settings, Training)


def _backprop(
    settings: Backprop, /, *, echo: notebooks.Echo = print, progress: bool = True
) -> dict:
    """Seed 001's step with ``settings``' placement (``progress`` has no lines to hide)."""
    del progress
    return notebooks.backprop_step(
        backend=settings.backend, device=settings.device, dtype=settings.dtype, echo=echo
    )


RUNS: dict[str, Run] = {
    run.settings.RUN: run
    for run in (
        Run(
            Backprop,
            _backprop,
            "seed 001: one backpropagation step, printed",
            "Seed 001: one forward pass, one backward pass and one SGD step of a fixed "
            "2-3-2 network (no random numbers, so no --seed), printed with the notebook's "
            "labels.",
        ),
        Run(
            Regression,
            notebooks.regression.planned,
            "notebook 1_3: SGD on 3*x0 + 2*x1",
            "Notebook 1_3: a 2-10-1 network fits 3*x0 + 2*x1 by per-sample SGD.",
        ),
        Run(
            BinaryAddition,
            notebooks.binary_addition.planned,
            "notebook 3_1: an RNN learns binary addition",
            "Notebook 3_1: a 2-16-1 RNN learns to add binary numbers, then adds every "
            "operand pair.",
        ),
        Run(
            Sine,
            notebooks.sine.planned,
            "notebook 3_3: a many-to-one RNN on a sine wave",
            "Notebook 3_3: a 1-5-1 many-to-one RNN predicts a sine wave one step ahead, then "
            "continues it from its own predictions. At the notebook's settings the "
            "continuation fades to a constant: see sine-wave.",
        ),
        Run(
            SineWave,
            notebooks.sine.planned,
            "notebook 3_3, trained until its continuation is a sine",
            "Notebook 3_3's network with the course's suggested windows of 5, trained longer "
            "(batches of 10, lr 0.3, 10000 iterations): its continuation is a sine.",
        ),
        Run(
            AddingProblem,
            notebooks.adding_problem.planned,
            "day 3: LSTM, GRU or simple RNN on the adding problem",
            "The adding problem (Hochreiter and Schmidhuber, 1997): sum the two marked "
            "values of a long sequence. Always predicting the mean scores a test MSE of "
            "about 0.167; only a network that remembers the marked values does better.",
        ),
    )
}
"""Run name -> ``Run``, the name being the settings class's ``RUN``."""

TRAINING_RUNS: tuple[str, ...] = tuple(name for name, run in RUNS.items() if run.trains)
