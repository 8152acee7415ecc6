"""The training loop, once, for every gradient source.

Each iteration asks a gradient source for the batch's loss and gradients (the gradient
part) and applies the update part (clip, then the optimiser; ``xpnn.training.step``):

* local, the default: the model's own core, fused with the update into ``make_step``'s
  step, compiled where the backend compiles (on JAX, all the iterations between two
  readings in one call); the stream's data moves to the device a chunk of iterations at
  a time, not batch by batch;
* a source that computes gradients elsewhere, ``xpnn.parallel.Gradients`` (one shard a
  worker on dask.distributed): ``loss, grads = source(params, i)``, then the update.

``train`` is the Python boundary: it checks everything once, before the first update,
and makes a ``Plan`` (``xpnn.training.plan``); ``run`` then trusts it. The loop never
reads an array value except every ``log_every`` iterations and at the run's last one (a
reading), where it reads the batch's loss, checks that it and the parameters and
optimiser state it came from are finite, and appends it to the history: on a GPU each
such read waits for the device.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from xpnn.backends import (
    Array,
    iteration_batch,
    persist,
    read_only,
    split_iterations,
)
from xpnn.datasets import CHUNK
from xpnn.errors import (
    NonFiniteError,
    TrainingDiverged,
    XpnnError,
    XpnnTypeError,
    XpnnValueError,
    check_callback,
    check_history,
    check_integer,
)
from xpnn.parallel import Gradients
from xpnn.training.plan import Plan, make_plan
from xpnn.training.state import LogEvent, RunStats, TrainState
from xpnn.training.step import Step, build_step, make_update

_UNSET: Any = object()


def train(
    model: Any,
    optimizer: Any,
    stream: Any,
    *,
    iters: int,
    log_every: int = 100,
    truncate: int | None = None,
    clip: float | None = None,
    compile: str = "auto",
    resume_from: TrainState | None = None,
    on_log: Callable[[LogEvent], None] | None = None,
    on_step: Callable[[TrainState], None] | None = None,
    on_step_every: int = 1,
    chunks: int | None = None,
    parallel: Any = None,
    start: Any = _UNSET,
    state: Any = _UNSET,
    history: Any = _UNSET,
) -> TrainState:
    """Train ``model`` with ``optimizer`` on batches from ``stream``; return the
    ``TrainState`` reached, whose parameters ``model.params`` then holds too.

    Every argument, the starting state and the first batch are checked before the first
    update; the loop then runs the step and reads a value on the host only at the
    readings: every multiple of ``log_every``, and the run's last iteration.

    Parameters
    ----------
    model : MLP or RNN
    optimizer : SGD, Momentum, AdaGrad, RMSProp or Adam
    stream : a ``datasets`` stream
        ``stream.batches(i, j)`` gives the host data of iterations ``i .. j - 1``.
    iters : int
        The iteration to stop before (a continued run passes its new end).
    log_every : int
        Iterations between loss readings.
    truncate : int, optional
        Truncated BPTT block length (RNN only).
    clip : float, optional
        Clip the gradients to this global norm.
    compile : {"auto", "on", "off"}
        Whether the step is compiled (see ``make_step``).
    resume_from : TrainState, optional
        Continue a run from this state (a ``TrainState`` that ``train`` returned, or a
        checkpoint's): its step, parameters, optimiser state and history. Without it the
        run starts at iteration 0 from ``model.params`` and ``optimizer.init``.
    on_log : callable, optional
        Called with a ``LogEvent`` at every reading.
    on_step : callable, optional
        Called with the ``TrainState`` after every multiple of ``on_step_every``
        iterations (checkpoints use it); its ``stats`` are zeros. The callback gets a
        snapshot: dicts of its own (a callback that pops, clears or replaces an entry
        changes nothing of the run) holding the run's arrays, which it must not write
        into (on NumPy they are read-only views).
    on_step_every : int
        See ``on_step``. A compiled JAX step runs the iterations between readings (and
        between ``on_step`` calls) in one call, so a larger value keeps those runs long.
    chunks : int, optional
        Dask only: batch rows per chunk (default: the batch in equal pieces of at most
        16384 rows, so every batch is whole chunks); other backends ignore it.
    parallel : distributed.Client, optional
        Train data-parallel on the client's workers, one shard per worker per step
        (``xpnn.parallel.Gradients``): the same run, to rounding. The workers' steps run
        uncompiled (``compile="on"`` is refused).
    start, state, history
        Deprecated: ``resume_from=TrainState(start, params, state, history)``.

    Returns
    -------
    TrainState
        ``step == iters``, the final parameters and optimiser state, the whole history,
        and the call's ``stats`` (wall time, compiled or not, first call's seconds).

    Raises
    ------
    TrainingDiverged
        A reading found a non-finite loss, or non-finite parameters or optimiser state
        behind a finite loss (a compiled step may hide NaN: XLA computes ``relu(NaN)`` as
        0), or the last update made them non-finite. The model keeps the parameters of
        the last finite reading; the exception carries them, the optimiser state there
        and the history.
    """
    resume_from = _deprecated_start(model, resume_from, start, state, history)
    if parallel is not None:
        if compile == "on":
            msg = 'compile="on": parallel training runs the workers\' steps uncompiled'
            raise XpnnValueError(msg, argument="compile")
        compile = "off"
    plan = make_plan(
        model,
        optimizer,
        iters=iters,
        log_every=log_every,
        truncate=truncate,
        clip=clip,
        compile=compile,
        on_step_every=on_step_every,
        chunks=chunks,
    )
    check_callback(on_log, "on_log")
    check_callback(on_step, "on_step")
    begin = starting_state(model, plan, resume_from)
    return fit(plan, model, stream, begin, parallel=parallel, on_log=on_log, on_step=on_step)


def fit(
    plan: Plan,
    model: Any,
    stream: Any,
    begin: TrainState,
    *,
    parallel: Any = None,
    on_log: Callable[[LogEvent], None] | None = None,
    on_step: Callable[[TrainState], None] | None = None,
) -> TrainState:
    """``plan`` from ``begin`` (both checked: ``make_plan``, ``starting_state``) on
    ``stream``, its gradients from the workers of the ``distributed.Client``
    ``parallel`` (``xpnn.parallel.Gradients``) or from the model itself: the stream
    checked against the model, then ``run``."""
    check_stream(model, stream, plan.iters, begin.step, whole_batches=parallel is not None)
    source = None if parallel is None else Gradients(parallel, model, stream, plan.truncate)
    try:
        return run(plan, model, stream, begin, source=source, on_log=on_log, on_step=on_step)
    finally:
        if source is not None:
            source.close()


def _deprecated_start(
    model: Any, resume_from: Any, start: Any, state: Any, history: Any
) -> TrainState | None:
    """``resume_from`` from the arguments it replaced (with a ``DeprecationWarning``)."""
    given = {k: v for k, v in (("start", start), ("state", state), ("history", history))}
    given = {k: v for k, v in given.items() if v is not _UNSET}
    if not given:
        return resume_from
    warnings.warn(
        f"train({', '.join(f'{k}=' for k in given)}) is deprecated; pass "
        "resume_from=TrainState(step, params, opt_state, history) (a TrainState that train "
        "returned, or a checkpoint's)",
        DeprecationWarning,
        stacklevel=3,
    )
    if resume_from is not None:
        msg = "give resume_from or the deprecated start/state/history, not both"
        raise XpnnValueError(msg, argument="resume_from")
    return TrainState(
        given.get("start", 0), model.params, given.get("state"), given.get("history") or ()
    )


def starting_state(model: Any, plan: Plan, resume_from: Any) -> TrainState:
    """The state the run starts from, checked once: ``resume_from``'s step (at most
    ``plan.iters``), history (readings below its step) and optimiser state (this
    optimiser's, for these parameters, finite: one sync), its parameters put on
    ``model`` (the ``params`` setter checks them); or iteration 0 from ``model.params``
    and ``optimizer.init``."""
    optimizer = plan.optimizer
    if resume_from is None:
        params = model.params
        return TrainState(0, params, optimizer.init(params), ())
    if not isinstance(resume_from, TrainState):
        msg = f"resume_from must be a TrainState, got {type(resume_from).__name__}"
        raise XpnnTypeError(msg, argument="resume_from")
    step = check_integer(resume_from.step, "resume_from.step", minimum=0, maximum=plan.iters)
    history = check_history(resume_from.history, before=step)
    model.params = resume_from.params
    params = model.params
    state = resume_from.opt_state
    state = optimizer.init(params) if state is None else state
    optimizer.check_state(params, state, values=True)  # one sync
    return TrainState(step, params, dict(state), tuple(history))


def check_stream(model: Any, stream: Any, iters: int, start: int, *, whole_batches: bool) -> None:
    """Refuse a stream that is not an xpnn stream or does not fit the model; check the
    batch of iteration ``start`` through the model's public ``loss`` (shapes, dtype,
    finiteness: one sync, outside the loop). ``whole_batches``: the run draws each
    iteration's batch alone (``batch_rows``), as a gradient source's workers do."""
    if not callable(getattr(stream, "batches", None)) or not hasattr(stream, "batch_size"):
        msg = f"stream must be an xpnn.datasets stream, got {type(stream).__name__}"
        raise XpnnTypeError(msg, argument="stream")
    if whole_batches and not callable(getattr(stream, "batch_rows", None)):
        msg = f"parallel training needs a stream with batch_rows, got {type(stream).__name__}"
        raise XpnnTypeError(msg, argument="stream")
    stream_axis = getattr(stream, "batch_axis", model.batch_axis)
    if stream_axis != model.batch_axis:
        msg = (
            f"stream has its batch on axis {stream_axis} but {type(model).__name__} takes "
            f"batches on axis {model.batch_axis}; build the stream with "
            f"batch_axis={model.batch_axis}"
        )
        raise XpnnValueError(msg, argument="stream")
    if start == iters:
        return
    try:
        if whole_batches:
            x, d = stream.batch_rows(start, 0, stream.batch_size)
        else:
            x, d = stream.batches(start, start + 1)
    except XpnnError:
        raise
    except (ValueError, MemoryError) as exc:  # NumPy: "array is too big", or no memory
        msg = (
            f"the stream cannot draw batches of batch_size={stream.batch_size} "
            f"({type(exc).__name__}: {exc}); use a smaller batch_size"
        )
        raise XpnnValueError(msg, argument="stream") from None
    model.loss(model.asarray(x, name="x"), model.asarray(d, name="d"))


def run(
    plan: Plan,
    model: Any,
    stream: Any,
    begin: TrainState,
    *,
    source: Any = None,
    on_log: Callable[[LogEvent], None] | None = None,
    on_step: Callable[[TrainState], None] | None = None,
) -> TrainState:
    """The loop: ``plan`` from ``begin`` (both checked by the caller) on ``stream``, with
    the gradients of ``source`` (None: the model's own, fused into one step). Returns
    the ``TrainState`` reached and puts its parameters on ``model``."""
    steps = _Local(model, plan, stream) if source is None else _Remote(model, plan, stream, source)
    xp, iters, every = model.xp, plan.iters, plan.on_step_every if on_step else None
    start, history = begin.step, list(begin.history)
    readings_before = len(history)
    params, state = begin.params, begin.opt_state
    good = (start, params, state)  # the last finite reading: iteration, params, state
    first_call = 0.0
    began = time.perf_counter()
    lo = start
    while lo < iters:  # one chunk of the stream at a time, cut at the stream's chunk edges
        hi = min(iters, (lo // CHUNK + 1) * CHUNK)
        steps.load(lo // CHUNK * CHUNK)
        for i, j in _spans(lo, hi, start, iters, plan.log_every, every, one=not steps.fuses):
            new_params, new_state, loss = steps.run(params, state, i, j)
            if i == start:  # the first call builds, traces and compiles: timed (one sync)
                float(loss)
                first_call = time.perf_counter() - began
            if i % plan.log_every == 0 or i == iters - 1:
                value = float(loss)
                if not (math.isfinite(value) and _all_finite(xp, params, state)):
                    raise _diverged(model, plan, good, i, value, history)
                good = (i, params, state)
                history.append((i, value))
                if on_log is not None:
                    x, d = steps.batch(i)
                    y, _cache = model.core.forward(params, x)  # the output, at readings only
                    first = first_call if len(history) == readings_before + 1 else None
                    on_log(LogEvent(i, value, x, d, y, plan.compiled, first, _snapshot(params)))
            params, state = new_params, new_state
            if on_step is not None and j % every == 0:
                on_step(TrainState(j, _snapshot(params), _snapshot(state), tuple(history)))
        lo = hi
    if start < iters:
        # the last update's result: the state in one sync, the parameters by the setter's
        # own finiteness check (one sync each), so nothing is checked twice
        if not _all_finite(xp, state):
            raise _diverged(model, plan, good, iters - 1, math.nan, history, last=True)
        try:
            model.params = params
        except NonFiniteError:
            raise _diverged(model, plan, good, iters - 1, math.nan, history, last=True) from None
    stats = RunStats(time.perf_counter() - began, plan.compiled, first_call)
    return TrainState(iters, params, state, tuple(history), stats)


class _Local:
    """The model's own gradients fused with the update: ``make_step``'s step on the
    stream's batches, moved to the device a chunk of ``CHUNK`` iterations at a time (every
    chunk one shape, so JAX compiles once). A compiled JAX step runs a span of
    iterations in one call (``fuses``)."""

    def __init__(self, model: Any, plan: Plan, stream: Any) -> None:
        self.model, self.stream = model, stream
        self.step = _step_for(model, plan)
        self.axis, self.rows = model.batch_axis, stream.batch_size
        self.target_axis = getattr(stream, "target_axis", self.axis)  # sine: (N, 1) targets
        self.chunk_rows = plan.chunks
        self.loop = self.step.loop(self.rows, self.axis, self.target_axis)
        self.fuses = self.loop is not None

    def load(self, base: int) -> None:
        """The chunk of iterations ``base .. base + CHUNK - 1`` on the device."""
        x_host, d_host = self.stream.batches(base, base + CHUNK)
        x = self.model.asarray(x_host, name="x", chunks=self.chunk_rows)
        d = self.model.asarray(d_host, name="d", chunks=self.chunk_rows)
        self.base, (self.x, self.d) = base, persist(x, d)  # dask: to the workers once
        if not self.fuses:
            self.xs = split_iterations(self.x, self.axis, CHUNK)
            self.ds = split_iterations(self.d, self.target_axis, CHUNK)

    def run(self, params: dict, state: dict, i: int, j: int) -> tuple[dict, dict, Array]:
        """Iterations ``i .. j - 1``: the parameters and state after them, and the loss
        of iteration ``i``."""
        k = i - self.base
        if not self.fuses:
            return self.step.unchecked(params, state, self.xs[k], self.ds[k])
        params, state, losses = self.loop(params, state, self.x, self.d, k, j - self.base)
        return params, state, losses[k]

    def batch(self, i: int) -> tuple[Array, Array]:
        """Iteration ``i``'s ``(x, d)`` on the device."""
        k = i - self.base
        x = iteration_batch(self.x, self.axis, self.rows, k)
        return x, iteration_batch(self.d, self.target_axis, self.rows, k)


class _Remote:
    """A gradient source's gradients and the update part, one iteration a call."""

    fuses = False

    def __init__(self, model: Any, plan: Plan, stream: Any, source: Any) -> None:
        self.model, self.stream, self.source = model, stream, source
        self.update = make_update(plan.optimizer, plan.clip, model.xp)

    def load(self, base: int) -> None:
        """Nothing: the source's workers make their own rows."""

    def run(self, params: dict, state: dict, i: int, j: int) -> tuple[dict, dict, float]:
        loss, grads = self.source(params, i)
        params, state = self.update(params, state, grads)
        return params, state, loss

    def batch(self, i: int) -> tuple[Array, Array]:
        x, d = self.stream.batch_rows(i, 0, self.stream.batch_size)
        return self.model.asarray(x, name="x"), self.model.asarray(d, name="d")


def _snapshot(tree: dict[str, Array]) -> dict[str, Array]:
    """A dict of the callback's own holding the run's arrays (read-only where the
    backend can say so)."""
    return {key: read_only(value) for key, value in tree.items()}


def _all_finite(xp: Any, *trees: dict[str, Array]) -> bool:
    """Whether every entry of every array in ``trees`` is finite: one sync, however many
    arrays."""
    flags = [xp.all(xp.isfinite(a)) for tree in trees for a in tree.values()]
    return not flags or bool(xp.all(xp.stack(flags)))


def _diverged(
    model: Any,
    plan: Plan,
    good: tuple[int, dict[str, Array], dict[str, Array]],
    iteration: int,
    loss: float,
    history: list[tuple[int, float]],
    *,
    last: bool = False,
) -> TrainingDiverged:
    """Put the last finite reading's parameters back on the model; the exception to raise."""
    good_step, params, state = good
    model.params = params
    if last:
        cause = "a parameter or optimiser state is not finite after the last iteration"
    elif math.isfinite(loss):
        cause = f"a parameter or optimiser state is not finite at iteration {iteration}"
    else:
        cause = f"the loss at iteration {iteration} is {loss}"
    hints = {
        "lr": plan.optimizer.lr,
        "clip": plan.clip,
        "momentum": getattr(plan.optimizer, "momentum", None),
        "init": getattr(model, "init", None),
        "weight_init_std": getattr(model, "weight_init_std", None),
    }
    msg = (
        f"training diverged: {cause}; the parameters were restored to the last finite "
        f"reading. {divergence_advice(hints)}."
    )
    return TrainingDiverged(
        msg,
        iteration=iteration,
        params=params,
        history=history,
        state=state,
        good_step=good_step,
        cause=cause,
    )


def divergence_advice(hints: dict[str, Any], name: Callable[[str], str] | None = None) -> str:
    """What to try after a divergence, from the run's settings ``hints`` (``lr``,
    ``clip``, and where the run has them ``momentum``, ``init``, ``weight_init_std``):
    ``"Try a lower learning rate than 5, gradient clipping (clip=1.0) or ..."``; ``name``
    turns a setting into the caller's word for it (the command line's flags)."""
    flags = name is not None
    label = name or (lambda key: {"lr": "learning rate"}.get(key, key))
    tips = [f"a lower {label('lr')} than {hints['lr']:g}"]
    if "clip" in hints and hints["clip"] is None:
        tips.append(f"{label('clip')} 1.0" if flags else "gradient clipping (clip=1.0)")
    if hints.get("momentum") is not None:
        tips.append(f"a lower {label('momentum')} than {hints['momentum']:g}")
    if hints.get("init") == "std":
        tips.append(f"{label('init')} xavier" if flags else 'init="xavier"')
    if hints.get("weight_init_std") is not None:
        tips.append(f"a smaller {label('weight_init_std')} than {hints['weight_init_std']:g}")
    joined = tips[0] if len(tips) == 1 else f"{', '.join(tips[:-1])} or {tips[-1]}"
    return f"Try {joined}"


def _spans(
    lo: int, hi: int, start: int, iters: int, log_every: int, every: int | None, *, one: bool
) -> Iterator[tuple[int, int]]:
    """The spans ``[i, j)`` of iterations ``lo .. hi - 1`` that one call runs: single
    iterations (``one``), or runs that start at every reading (a multiple of ``log_every``,
    and the last iteration) and end at the next reading, at ``start + 1`` (the first call,
    the compile, runs alone) and at every multiple of ``every`` (where ``on_step`` is
    called)."""
    i = lo
    while i < hi:
        j = i + 1
        if not one:
            ends = [hi, (i // log_every + 1) * log_every]
            if i < iters - 1:
                ends.append(iters - 1)
            if i == start:
                ends.append(start + 1)
            if every is not None:
                ends.append((i // every + 1) * every)
            j = min(ends)
        yield i, j
        i = j


_STEPS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Step]] = weakref.WeakKeyDictionary()
"""Each model's steps, for as long as the model lives: a step is built on ``model.core``
(not on the model), so an entry does not keep its model alive."""


def _step_for(model: Any, plan: Plan) -> Step:
    """The plan's step, kept in ``_STEPS`` for the model's next run with the same
    optimiser and settings (a continued run): a compiled step is compiled once, not once
    per call."""
    steps = _STEPS.setdefault(model, {})
    key = (plan.optimizer, plan.truncate, plan.clip, plan.compiler)
    if key not in steps:
        steps[key] = build_step(model.core, plan.optimizer, plan.truncate, plan.clip, plan.compiler)
    return steps[key]
