"""A training run's settings, checked and decided once where they enter, then trusted.

The boundaries (``train``, ``Checkpointer.run``, the command line's settings) turn what
they were given into one frozen ``Plan``; the loop, the step and a checkpoint's record
take it and check nothing again. The compile decision is made here, once, by
``xpnn.backends.compiler_for``: the plan holds the compiler (or None), never the mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xpnn.backends import compiler_for
from xpnn.errors import check_integer
from xpnn.optim import Optimizer
from xpnn.training.step import check_step_args


@dataclass(frozen=True)
class Plan:
    """What a training run does, resolved.

    Attributes
    ----------
    optimizer : Optimizer
        The optimiser (its hyperparameters were checked when it was made).
    iters : int
        The iteration to stop before.
    log_every : int
        Iterations between loss readings (the run's last iteration is read too).
    truncate : int or None
        Truncated BPTT block length; None for full BPTT (and for an MLP).
    clip : float or None
        The global gradient norm cap; None for no clipping.
    compiler : str or None
        What compiles the step (``"jax.jit"``, ``"torch.compile"``); None: eager.
    on_step_every : int
        Iterations between ``on_step`` calls.
    chunks : int or None
        Dask only: batch rows per chunk (None: the backend's default).
    """

    optimizer: Optimizer
    iters: int
    log_every: int = 100
    truncate: int | None = None
    clip: float | None = None
    compiler: str | None = None
    on_step_every: int = 1
    chunks: int | None = None

    @property
    def compiled(self) -> bool:
        """Whether the step runs compiled."""
        return self.compiler is not None

    def recorded(self) -> dict[str, Any]:
        """The settings a checkpoint records because they change the result: a resumed
        run must repeat them (a compiled step rounds unlike an eager one)."""
        return {
            "log_every": self.log_every,
            "truncate": self.truncate,
            "clip": self.clip,
            "compiler": self.compiler,
        }


def make_plan(
    model: Any,
    optimizer: Any,
    *,
    iters: Any,
    log_every: Any = 100,
    truncate: Any = None,
    clip: Any = None,
    compile: Any = "auto",
    on_step_every: Any = 1,
    chunks: Any = None,
) -> Plan:
    """The ``Plan`` of a run of ``model`` with ``optimizer``: every argument checked, and
    ``compile`` (``"auto"``, ``"on"``, ``"off"``) decided for the model's backend and a
    run of ``iters`` steps.

    Raises
    ------
    XpnnTypeError, XpnnValueError
        Naming the first bad argument.
    """
    truncate, clip = check_step_args(model, optimizer, truncate, clip)
    iters = check_integer(iters, "iters")
    return Plan(
        optimizer,
        iters,
        check_integer(log_every, "log_every"),
        truncate,
        clip,
        compiler_for(model.backend, compile, steps=iters),
        check_integer(on_step_every, "on_step_every"),
        None if chunks is None else check_integer(chunks, "chunks"),
    )
