"""``TrainState``: where a training run stands, as one value.

``train`` returns it, ``on_step`` receives it, a ``Checkpointer`` saves it and a resumed
run starts from it: the step count, the parameters, the optimiser's state and the loss
history travel together, and none of them is read off a mutated model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xpnn.backends import Array


@dataclass(frozen=True)
class RunStats:
    """Facts about one ``train`` call, not about the run's state: its wall time in
    seconds, whether the step ran compiled, and how long the step's first call took (the
    compile included, where there is one; 0.0 when no iteration ran)."""

    seconds: float = 0.0
    compiled: bool = False
    compile_seconds: float = 0.0


@dataclass(frozen=True, eq=False)
class TrainState:
    """A training run's state after ``step`` iterations.

    Attributes
    ----------
    step : int
        The number of iterations done (the next one to run is ``step``).
    params : dict of str to Array
        The parameters after ``step`` iterations, keyed like ``model.params``.
    opt_state : dict of str to Array
        The optimiser's state that goes with ``params`` (``{}`` for SGD).
    history : tuple of (int, float)
        The ``(iteration, loss)`` readings so far, the loss of each batch before its update.
    stats : RunStats
        What the ``train`` call that returned this state measured (zeros for a state
        made otherwise, such as the ones ``on_step`` receives or a checkpoint's).
    """

    step: int
    params: dict[str, Array]
    opt_state: dict[str, Array]
    history: tuple[tuple[int, float], ...] = ()
    stats: RunStats = field(default_factory=RunStats)


@dataclass(frozen=True)
class LogEvent:
    """What ``on_log`` receives: the iteration, its batch's loss (before the update), and
    that batch's input ``x``, target ``d`` and output ``y`` (backend arrays); whether the
    step runs compiled, and, at the run's first reading only, the seconds its first call
    took (the compile included, where there is one); the parameters that gave ``y``."""

    iteration: int
    loss: float
    x: Array
    d: Array
    y: Array
    compiled: bool = False
    compile_seconds: float | None = None
    params: dict[str, Array] | None = None
