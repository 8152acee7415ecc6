"""The settings of the notebooks' training runs, one dataclass per run.

``Training`` holds what every run shares (the backend, the optimiser, the loop, the
checkpoint); ``Regression``, ``BinaryAddition`` and ``Sine`` add each notebook's own
numbers, with the notebook's values as defaults; ``AddingProblem`` is the long-memory
task of the course's Day-3 cells. ``xpnn train`` builds them from its
options by field name, so a new field here is a new setting everywhere.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from xpnn.optim import Optimizer, build

Folder = str | os.PathLike[str] | None


@dataclass(frozen=True)
class Training:
    """What every training run shares.

    ``optimizer`` names one of ``xpnn.optim.OPTIMIZERS`` (default: ``"sgd"``, or
    ``"momentum"`` where ``momentum`` is given); ``momentum``, ``beta1``, ``beta2``,
    ``eps`` and ``decay`` are its hyperparameters (None: the optimiser's default; one it
    does not take is refused). ``compile`` is ``make_step``'s. ``checkpoint`` is a folder where
    ``checkpoint.npz`` is kept current every ``checkpoint_every`` iterations (default
    ``log_every``); ``resume`` continues from that checkpoint (the recorded settings must
    match, and it ends bit for bit where an uninterrupted run would).
    """

    RUN: ClassVar[str] = ""
    # Fields a resumed run may change: they decide where and how long the run goes,
    # and what it evaluates afterwards, not the numbers of an iteration.
    UNRECORDED: ClassVar[frozenset[str]] = frozenset(
        {
            "iters",
            "log_every",
            "backend",
            "device",
            "dtype",
            "checkpoint",
            "checkpoint_every",
            "resume",
            "n_test",
            "n_generate",
            "compile",  # recorded by the Checkpointer, as a train() argument
        }
    )
    OPTIONS: ClassVar[tuple[str, ...]] = ("momentum", "beta1", "beta2", "eps", "decay")

    iters: int = 1000
    lr: float = 0.1
    batch_size: int = 1
    log_every: int = 100
    seed: int = 0
    backend: str = "numpy"
    device: Any = None
    dtype: str = "float64"
    optimizer: str | None = None
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    decay: float | None = None
    compile: str = "auto"
    checkpoint: Folder = None
    checkpoint_every: int | None = None
    resume: bool = False

    def make_optimizer(self) -> Optimizer:
        """The run's optimiser, with ``lr`` and the hyperparameters given.

        Raises
        ------
        XpnnValueError
            An unknown optimiser, an option it does not take, or a value out of range.
        """
        name = self.optimizer or ("sgd" if self.momentum is None else "momentum")
        options = {k: getattr(self, k) for k in self.OPTIONS if getattr(self, k) is not None}
        return build(name, lr=self.lr, **options)

    def placement(self) -> dict[str, Any]:
        """``seed``, ``backend``, ``device`` and ``dtype``: where a run's network is built,
        and from what seed (the keyword arguments every network builder takes)."""
        return {k: getattr(self, k) for k in ("seed", "backend", "device", "dtype")}

    def recorded(self) -> dict[str, Any]:
        """The settings a checkpoint records and a resumed run must repeat."""
        values = {k: v for k, v in asdict(self).items() if k not in self.UNRECORDED}
        return {"run": self.RUN, **values}


@dataclass(frozen=True)
class Regression(Training):
    """Notebook 1_3: a 2-``hidden_size``-1 network fits ``3 * x0 + 2 * x1`` on
    ``n_samples`` inputs uniform in ``[low, high)``; tested on ``n_test`` fresh ones."""

    RUN: ClassVar[str] = "regression"

    iters: int = 1000
    lr: float = 0.07
    hidden_size: int = 10
    activation: str = "relu"
    n_samples: int = 100_000
    n_test: int = 1000
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class BinaryAddition(Training):
    """Notebook 3_1: a 2-``hidden_size``-1 RNN learns ``bits``-bit addition; ``truncate``
    is the truncated-BPTT block, ``clip`` the global gradient norm cap. ``cell`` is the
    recurrent cell (``rnn``, ``lstm``, ``gru``); ``activation`` is the simple RNN's, the
    gated cells have their own."""

    RUN: ClassVar[str] = "binary-addition"

    iters: int = 10_000
    lr: float = 0.1
    hidden_size: int = 16
    activation: str = "sigmoid"
    init: str = "std"
    weight_init_std: float = 1.0
    bits: int = 8
    truncate: int | None = None
    clip: float | None = None
    cell: str = "rnn"


@dataclass(frozen=True)
class Sine(Training):
    """Notebook 3_3: a 1-``hidden_size``-1 many-to-one RNN (``cell``: ``rnn``, ``lstm``,
    ``gru``) predicts a sine wave from ``maxlen`` values, then generates ``n_generate``
    points from its own predictions."""

    RUN: ClassVar[str] = "sine"

    iters: int = 500
    lr: float = 0.1
    hidden_size: int = 5
    maxlen: int = 2
    weight_init_std: float = 0.01
    n_generate: int = 200
    cell: str = "rnn"


@dataclass(frozen=True)
class AddingProblem(Training):
    """The adding problem (``xpnn.datasets.adding_problem``): a 2-``hidden_size``-1
    many-to-one network with the recurrent ``cell`` sums the two marked values of
    sequences of ``steps`` steps, ``batch_size`` fresh sequences per iteration, Adam, the
    gradient clipped to the global norm ``clip``; tested on ``n_test`` fresh sequences."""

    RUN: ClassVar[str] = "adding-problem"

    iters: int = 1000
    lr: float = 0.01
    batch_size: int = 32
    optimizer: str | None = "adam"
    cell: str = "lstm"
    steps: int = 100
    hidden_size: int = 32
    clip: float | None = 1.0
    n_test: int = 1000


@dataclass(frozen=True)
class SineWave(Sine):
    """Notebook 3_3's network trained until its continuation is a sine: the course's
    suggested ``maxlen`` 5, with batches of 10, lr 0.3 and 10000 iterations (the course's
    500 or 3000 single-window iterations leave a continuation that fades to a constant)."""

    iters: int = 10_000
    lr: float = 0.3
    batch_size: int = 10
    maxlen: int = 5
