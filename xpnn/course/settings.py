"""The settings of the notebooks' runs, one frozen dataclass per run.

``Training`` holds what every training run shares (the backend, the optimiser, the
loop, the checkpoint); ``Regression``, ``BinaryAddition`` and ``Sine`` add each
notebook's own numbers, with the notebook's values as defaults; ``AddingProblem`` is the
long-memory task of the course's Day-3 cells; ``Backprop`` is seed 001's single step.
Each field is an ``xpnn.course.fields.option``: its help, flag and choices are what
``xpnn train RUN --help`` shows, and ``check()`` checks every value once. ``RUN`` is the
run's name in ``xpnn.course.registry.RUNS``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from xpnn import datasets
from xpnn.backends import (
    AUTO_TORCH_STEPS,
    BACKENDS,
    COMPILE_MODES,
    compiler_for,
    get_namespace,
    resolve_device,
    resolve_dtype,
)
from xpnn.course.fields import (
    COUNT,
    FINITE,
    FLAG,
    INTEGER,
    NUMBER,
    POSITIVE,
    SEED,
    Kind,
    Label,
    check_fields,
    option,
    relabeled,
)
from xpnn.course.networks import ADDING_MODELS
from xpnn.errors import BackendUnavailable, XpnnError, XpnnValueError
from xpnn.nn.cells import CELLS
from xpnn.optim import OPTIMIZERS, Adam, Momentum, Optimizer, RMSProp, build
from xpnn.training.plan import Plan
from xpnn.training.resume import Checkpointer, check_folder

Folder = str | os.PathLike[str] | None

FOLDER = Kind("a folder", Path, check_folder)
"""A checkpoint folder: a writable folder, or one that ``mkdir -p`` can make."""

_ADAM, _RMSPROP = Adam(), RMSProp()


def _backend() -> Any:
    return option("numpy", "array backend", choices=BACKENDS)


def _dtype() -> Any:
    return option("float64", "floating dtype", choices=("float32", "float64"))


def _momentum_unset(cls: type) -> str:
    """Without --momentum: plain SGD where the run's optimiser is SGD's default."""
    plain = "plain SGD" if cls.optimizer is None else "none"
    return f"{plain}; with --optimizer momentum: {Momentum().momentum}"


def _hidden_size(default: int) -> Any:
    return option(default, "hidden units", kind=COUNT)


def _cell(default: str) -> Any:
    return option(default, "the recurrent cell", choices=CELLS)


@dataclass(frozen=True)
class Backprop:
    """Seed 001: one step of a fixed 2-3-2 network on ``backend``, ``device``, ``dtype``."""

    RUN: ClassVar[str] = "backprop"

    backend: str = _backend()
    device: Any = option(None, "device name, e.g. cpu, cuda:0", unset="the backend's")
    dtype: str = _dtype()

    def check(self, label: Label = str) -> None:
        """``resolve``, for its refusals alone."""
        self.resolve(label)

    def resolve(self, label: Label = str) -> Backprop:
        """These settings, every field checked and the device and dtype found on the
        backend (``XpnnValueError`` naming the first wrong one by ``label``;
        ``BackendUnavailable`` where the backend cannot run here)."""
        check_fields(self, label)
        try:
            xp = get_namespace(self.backend)
            resolve_dtype(xp, self.dtype, resolve_device(xp, self.device))
        except BackendUnavailable:
            raise
        except XpnnError as exc:
            raise relabeled(exc, label) from None
        return self


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
    # The fields that check() (and xpnn.course.registry.check_placement) judge together;
    # every other field is judged alone. Keep in step with check(): xpnn sweep checks
    # every combination of the grid keys tied here, and one value of the others.
    RELATIONS: ClassVar[tuple[frozenset[str], ...]] = (
        frozenset({"checkpoint", "resume", "checkpoint_every"}),
        frozenset({"optimizer", "lr", *OPTIONS}),
        frozenset({"backend", "device", "dtype", "compile"}),
    )

    iters: int = option(1000, "iterations", kind=COUNT)
    lr: float = option(0.1, "learning rate", kind=NUMBER)
    batch_size: int = option(1, "batch size", kind=COUNT)
    log_every: int = option(
        100, "iterations between progress lines (and loss readings)", kind=COUNT
    )
    seed: int = option(0, "seed of weights and data", kind=SEED)
    backend: str = _backend()
    device: Any = option(None, "device name, e.g. cpu, cuda:0", unset="the backend's")
    dtype: str = _dtype()
    optimizer: str | None = option(
        None,
        "the optimiser, with --lr and its own options below",
        choices=tuple(OPTIMIZERS),
        unset="sgd, or momentum where --momentum is given",
        optional=True,
    )
    momentum: float | None = option(
        None, "momentum's momentum, in (0, 1)", kind=NUMBER, unset=_momentum_unset
    )
    beta1: float | None = option(None, "adam's beta1", kind=NUMBER, unset=f"{_ADAM.beta1}")
    beta2: float | None = option(None, "adam's beta2", kind=NUMBER, unset=f"{_ADAM.beta2}")
    eps: float | None = option(
        None, "adagrad's, rmsprop's and adam's eps", kind=NUMBER, unset=f"{_ADAM.eps:g}"
    )
    decay: float | None = option(None, "rmsprop's decay", kind=NUMBER, unset=f"{_RMSPROP.decay}")
    compile: str = option(
        "auto",
        "compile the training step: auto compiles on jax (any sequence length: the time "
        f"loop is one lax.scan) and on torch for runs of {AUTO_TORCH_STEPS}+ "
        "iterations; on needs jax or torch",
        choices=COMPILE_MODES,
    )
    checkpoint: Folder = option(
        None,
        f"keep DIR/{Checkpointer.FILENAME} current (DIR is made if missing)",
        kind=FOLDER,
        unset="none",
        metavar="DIR",
    )
    checkpoint_every: int | None = option(
        None, "iterations between checkpoints", kind=COUNT, unset="--log-every", metavar="N"
    )
    resume: bool = option(
        False,
        "continue from the checkpoint in --checkpoint DIR, with the same settings",
        kind=FLAG,
    )

    def check(self, label: Label = str) -> None:
        """``resolve``, for its refusals alone."""
        self.resolve(label)

    def resolve(self, label: Label = str) -> RunPlan:
        """Check every field, then what fields say together (``RELATIONS``: the
        checkpoint options, the optimiser and its options, ``compile`` on the backend),
        and make the run's ``RunPlan``. ``label`` names a field in a message (``str``: by
        its name; the command line: by its flag).

        Raises
        ------
        XpnnValueError
            The first wrong field or combination.
        BackendUnavailable
            The backend cannot run here (not a mistake in the settings).
        """
        check_fields(self, label)
        try:
            self._check_relations(label)
            optimizer = self.make_optimizer()
            compiler = compiler_for(self.backend, self.compile, steps=self.iters)
            xp = get_namespace(self.backend)
            device = resolve_device(xp, self.device)
            dtype = resolve_dtype(xp, self.dtype, device)
        except BackendUnavailable:
            raise
        except XpnnError as exc:
            raise relabeled(exc, label) from None
        plan = Plan(
            optimizer,
            self.iters,
            self.log_every,
            getattr(self, "truncate", None),
            getattr(self, "clip", None),
            compiler,
            self.log_every if self.checkpoint_every is None else self.checkpoint_every,
        )
        return RunPlan(self, device, dtype, plan)

    def _check_relations(self, label: Label) -> None:
        """What fields say together, beyond the optimiser and the placement."""
        if self.checkpoint is None and (self.resume or self.checkpoint_every is not None):
            names = (label("resume"), label("checkpoint_every"), label("checkpoint"))
            msg = "{} and {} need {}".format(*names)
            raise XpnnValueError(msg, argument="checkpoint")

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
    RELATIONS = (*Training.RELATIONS, frozenset({"low", "high"}))

    iters: int = 1000
    lr: float = 0.07
    hidden_size: int = _hidden_size(10)
    activation: str = option("relu", "hidden activation", choices=("relu", "sigmoid", "tanh"))
    n_samples: int = option(100_000, "training samples", kind=COUNT, cli=False)
    n_test: int = option(1000, "fresh test samples", kind=COUNT, cli=False)
    low: float = option(0.0, "inputs uniform in [low, high)", kind=FINITE)
    high: float = option(1.0, "see --low", kind=FINITE)

    def _check_relations(self, label: Label) -> None:
        """``Training``'s, and ``low < high``."""
        super()._check_relations(label)
        datasets.check_interval(self.low, self.high)


@dataclass(frozen=True)
class BinaryAddition(Training):
    """Notebook 3_1: a 2-``hidden_size``-1 RNN learns ``bits``-bit addition; ``truncate``
    is the truncated-BPTT block, ``clip`` the global gradient norm cap. ``cell`` is the
    recurrent cell (``rnn``, ``lstm``, ``gru``); ``activation`` is the simple RNN's, the
    gated cells have their own."""

    RUN: ClassVar[str] = "binary-addition"
    RELATIONS = (*Training.RELATIONS, frozenset({"cell", "activation"}))

    iters: int = 10_000
    lr: float = 0.1
    hidden_size: int = _hidden_size(16)
    activation: str = option("sigmoid", "hidden activation", choices=("sigmoid", "tanh", "relu"))
    init: str = option("std", "weight init", choices=("std", "xavier", "he"))
    weight_init_std: float = option(
        1.0, "standard deviation of the weights with --init std", kind=POSITIVE
    )
    bits: int = option(8, f"bits per number (2 to {datasets.MAX_ALL_PAIRS_BITS})", kind=INTEGER)
    truncate: int | None = option(None, "truncated BPTT block", kind=COUNT, unset="full BPTT")
    clip: float | None = option(None, "global gradient norm cap", kind=POSITIVE, unset="none")
    cell: str = _cell("rnn")

    def _check_relations(self, label: Label) -> None:
        """``Training``'s; ``bits`` small enough to test every operand pair; an
        ``activation`` other than the default only with the simple RNN."""
        super()._check_relations(label)
        datasets.check_bits(self.bits, datasets.MAX_ALL_PAIRS_BITS)
        if self.cell != "rnn" and self.activation != type(self).activation:
            msg = f"{label('activation')} applies to {label('cell')} rnn only, not {self.cell}"
            raise XpnnValueError(msg, argument="activation")


@dataclass(frozen=True)
class Sine(Training):
    """Notebook 3_3: a 1-``hidden_size``-1 many-to-one RNN (``cell``: ``rnn``, ``lstm``,
    ``gru``) predicts a sine wave from ``maxlen`` values, then generates ``n_generate``
    points from its own predictions."""

    RUN: ClassVar[str] = "sine"

    iters: int = 500
    lr: float = 0.1
    hidden_size: int = _hidden_size(5)
    maxlen: int = option(2, "window length", kind=COUNT)
    weight_init_std: float = option(
        0.01, "standard deviation of the initial weights", kind=POSITIVE
    )
    n_generate: int = option(200, "points generated", kind=COUNT, cli=False)
    cell: str = _cell("rnn")

    def _check_relations(self, label: Label) -> None:
        """``Training``'s, and ``maxlen`` short enough to leave training windows."""
        super()._check_relations(label)
        datasets.check_windows(self.maxlen)


@dataclass(frozen=True)
class AddingProblem(Training):
    """The adding problem (``xpnn.datasets.adding_problem``): a 2-``hidden_size``-1
    many-to-one network with the recurrent ``cell`` (or one of the IRNN paper's networks,
    ``model``: ``xpnn.course.networks.ADDING_MODELS``) sums the two marked values of
    sequences of ``steps`` steps, ``batch_size`` fresh sequences per iteration, Adam, the
    gradient clipped to the global norm ``clip``; tested on ``n_test`` fresh sequences at
    the end, and every ``eval_every`` iterations where given (the run's test curve)."""

    RUN: ClassVar[str] = "adding-problem"
    RELATIONS = (
        *Training.RELATIONS,
        frozenset({"cell", "model", "init_scale"}),
        frozenset({"eval_every", "log_every", "iters"}),
    )

    iters: int = 1000
    lr: float = 0.01
    batch_size: int = 32
    optimizer: str | None = "adam"
    cell: str | None = option(
        None, "the recurrent cell", choices=CELLS, unset="lstm, or --model's", optional=True
    )
    model: str | None = option(
        None,
        "one of the IRNN paper's networks, which sets the cell and its start: lstm, gru, "
        "rnn-tanh (Xavier), rnn-relu (the course's randn start), irnn (identity recurrent "
        "weights, N(0, 0.001^2) input and output weights)",
        choices=tuple(ADDING_MODELS),
        unset="--cell's, tanh, Xavier start",
        optional=True,
    )
    init_scale: float | None = option(
        None, "the irnn's identity scale", kind=POSITIVE, unset="1.0 with --model irnn"
    )
    steps: int = option(100, "sequence length (at least 2)", kind=COUNT)
    hidden_size: int = _hidden_size(32)
    clip: float | None = option(1.0, "global gradient norm cap", kind=POSITIVE, optional=True)
    n_test: int = option(1000, "fresh test sequences", kind=COUNT)
    eval_every: int | None = option(
        None,
        "iterations between test MSEs on the n-test sequences (a multiple of --log-every): "
        "the run's test curve",
        kind=COUNT,
        unset="at the end only",
        metavar="N",
    )

    def _check_relations(self, label: Label) -> None:
        """``Training``'s; ``steps`` of at least 2; ``cell`` or ``model``, not both;
        ``init_scale`` with the irnn only; ``eval_every`` a multiple of ``log_every``."""
        super()._check_relations(label)
        datasets.check_steps(self.steps)
        if self.cell is not None and self.model is not None:
            msg = f"give {label('cell')} or {label('model')} (which sets the cell), not both"
            raise XpnnValueError(msg, argument="cell")
        if self.init_scale is not None and self.model != "irnn":
            msg = f"{label('init_scale')} is the irnn's identity scale: give {label('model')} irnn"
            raise XpnnValueError(msg, argument="init_scale")
        if self.eval_every is not None and self.eval_every % self.log_every:
            msg = (
                f"{label('eval_every')} must be a multiple of {label('log_every')} "
                f"({self.log_every}), got {self.eval_every}: the test runs at readings"
            )
            raise XpnnValueError(msg, argument="eval_every")


@dataclass(frozen=True)
class SineWave(Sine):
    """Notebook 3_3's network trained until its continuation is a sine: the course's
    suggested ``maxlen`` 5, with batches of 10, lr 0.3 and 10000 iterations (the course's
    500 or 3000 single-window iterations leave a continuation that fades to a constant)."""

    RUN: ClassVar[str] = "sine-wave"

    iters: int = 10_000
    lr: float = 0.3
    batch_size: int = 10
    maxlen: int = 5


@dataclass(frozen=True)
class RunPlan:
    """A run's settings, checked and resolved once (``Training.resolve``): the settings
    themselves (the run's own numbers), the device and dtype objects of the backend, and
    the training loop's ``Plan`` (the optimiser built, the compile decided)."""

    settings: Training
    device: Any
    dtype: Any
    training: Plan

    def placement(self) -> dict[str, Any]:
        """``seed``, ``backend``, ``device`` and ``dtype`` (resolved): where the run's
        network is built, and from what seed (the keyword arguments every network
        builder takes)."""
        s = self.settings
        return {"seed": s.seed, "backend": s.backend, "device": self.device, "dtype": self.dtype}
