"""The training loop: batches from a stream, one ``make_step`` step per batch, a loss
history.

Everything is checked once, before the first update. The loop then never reads an array
value except every ``log_every`` iterations (and at the last one), where it reads the
batch's loss, checks that it is finite and appends it to the history: on a GPU each such
read waits for the device. Data moves to the device a chunk of iterations at a time, not
batch by batch. A compiled JAX step runs all the iterations from one reading to the next
in one call (``Step.loop``), so that no Python dispatch is paid per iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from xpnn.backends import (
    Array,
    check_compile,
    compiler_for,
    default_chunk_rows,
    iteration_batch,
    persist,
    split_iterations,
)
from xpnn.checks import check_size
from xpnn.datasets import CHUNK
from xpnn.errors import TrainingDiverged, XpnnError, XpnnTypeError, XpnnValueError, shown
from xpnn.step import check_step_args, make_step


@dataclass(frozen=True)
class LogEvent:
    """What ``on_log`` receives: the iteration, its batch's loss (before the update), and
    that batch's input ``x``, target ``d`` and output ``y`` (backend arrays); whether the
    step runs compiled, and, at the run's first reading only, the seconds its first call
    took (the compile included, where there is one)."""

    iteration: int
    loss: float
    x: Array
    d: Array
    y: Array
    compiled: bool = False
    compile_seconds: float | None = None


@dataclass
class TrainResult:
    """The outcome of ``train``: the final parameters (also set on the model) and
    optimiser state, the ``(iteration, loss)`` history, the number of iterations run, the
    wall time, whether the step ran compiled and how long its first call (the compile,
    where there is one) took."""

    params: dict[str, Array]
    state: dict[str, Array] = field(default_factory=dict)
    history: list[tuple[int, float]] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    compiled: bool = False
    compile_seconds: float = 0.0


def train(
    model: Any,
    optimizer: Any,
    stream: Any,
    *,
    iters: int,
    start: int = 0,
    log_every: int = 100,
    truncate: int | None = None,
    clip: float | None = None,
    compile: str = "auto",
    state: Mapping[str, Array] | None = None,
    on_log: Callable[[LogEvent], None] | None = None,
    on_step: Callable[[int, dict[str, Array]], None] | None = None,
    on_step_every: int = 1,
    history: list[tuple[int, float]] | None = None,
    chunks: int | None = None,
) -> TrainResult:
    """Train ``model`` in place with ``optimizer`` on batches from ``stream``.

    Every argument, the optimiser state and the first batch are checked before the first
    update; the loop then runs ``make_step``'s step and reads a value on the host only
    at the readings (every ``log_every`` iterations, and the last).

    Parameters
    ----------
    model : MLP or RNN
    optimizer : SGD, Momentum, AdaGrad, RMSProp or Adam
    stream : a ``datasets`` stream
        ``stream.batches(i, j)`` gives the host data of iterations ``i .. j - 1``.
    iters : int
        The iteration to stop before (a resumed run passes the same ``iters``).
    start : int
        The first iteration (0, or where a checkpoint left off).
    log_every : int
        Iterations between loss readings; iteration ``start`` and the last are always read.
    truncate : int, optional
        Truncated BPTT block length (RNN only).
    clip : float, optional
        Clip the gradients to this global norm.
    compile : {"auto", "on", "off"}
        Whether the step is compiled (see ``make_step``).
    state : dict of arrays, optional
        The optimiser state to continue from (a resumed run's); ``optimizer.init`` if None.
    on_log : callable, optional
        Called with a ``LogEvent`` at every reading.
    on_step : callable, optional
        Called with the number of iterations done and the optimiser state whenever that
        number is a multiple of ``on_step_every`` (checkpoints use it; ``model.params``
        holds the parameters).
    on_step_every : int
        See ``on_step``. A compiled JAX step runs the iterations between readings (and
        between ``on_step`` calls) in one call, so a larger value keeps those runs long.
    history : list, optional
        The history to continue (a resumed run passes the saved one).
    chunks : int, optional
        Dask only: batch rows per chunk (default ``backend.default_chunk_rows`` of the
        batch size, so every batch is whole chunks); other backends ignore it.

    Raises
    ------
    TrainingDiverged
        A reading found a non-finite loss, or the last update made a parameter
        non-finite. The model keeps the parameters of the last finite reading; the
        exception carries them, the optimiser state there and the history.
    """
    iters, log_every = check_size(iters, "iters"), check_size(log_every, "log_every")
    every = check_size(on_step_every, "on_step_every") if on_step is not None else None
    check_step_args(model, optimizer, truncate, clip)
    check_compile(compile)
    for name, callback in (("on_log", on_log), ("on_step", on_step)):
        if callback is not None and not callable(callback):
            msg = f"{name} must be a function or None, got {type(callback).__name__}"
            raise XpnnTypeError(msg)
    _check_stream(model, stream, iters, start)
    if state is None:
        state = optimizer.init(model.params)
    optimizer.check_state(model.params, state, finite=True)
    compiler = compiler_for(model.backend, compile, steps=iters)
    compiled = compiler is not None
    step = _step_for(model, optimizer, truncate, clip, "on" if compiled else "off")
    xp, axis, batch = model.xp, model.batch_axis, stream.batch_size
    rows = default_chunk_rows(batch) if chunks is None else check_size(chunks, "chunks")
    target_axis = getattr(stream, "target_axis", axis)  # sine: (T, N, 1) inputs, (N, 1) targets
    history = list(history or [])
    readings_before = len(history)
    params, state = model.params, dict(state)
    good = (start, params, state)  # the last finite reading: iteration, params, state
    compile_seconds = 0.0
    began = time.perf_counter()
    loop = step.loop(batch, axis, target_axis)  # JAX: the steps between readings in one call
    lo = start
    while lo < iters:  # one chunk of the stream at a time, cut at the stream's chunk edges
        hi = min(iters, (lo // CHUNK + 1) * CHUNK)
        base = lo // CHUNK * CHUNK  # the whole chunk, so that every chunk has one shape (JAX
        x_host, d_host = stream.batches(base, base + CHUNK)  # compiles once per shape)
        x_all = model.asarray(x_host, name="x", chunks=rows)
        d_all = model.asarray(d_host, name="d", chunks=rows)
        x_all, d_all = persist(x_all, d_all)  # dask: the data moves to the workers once
        if loop is None:
            xs = split_iterations(x_all, axis, CHUNK)
            ds = split_iterations(d_all, target_axis, CHUNK)
        for i, j in _spans(lo, hi, start, iters, log_every, every, one=loop is None):
            if loop is None:
                new_params, new_state, loss = step(params, state, xs[i - base], ds[i - base])
            else:
                new_params, new_state, losses = loop(
                    params, state, x_all, d_all, i - base, j - base
                )
                loss = losses[i - base]
            if i == start:  # the first call traces and compiles: time it (one sync)
                float(loss)
                compile_seconds = time.perf_counter() - began
            if i % log_every == 0 or i == iters - 1:
                value = float(loss)
                if not math.isfinite(value):
                    raise _diverged(model, optimizer, clip, good, i, value, history)
                good = (i, params, state)
                history.append((i, value))
                if on_log is not None:
                    x = iteration_batch(x_all, axis, batch, i - base)
                    d = iteration_batch(d_all, target_axis, batch, i - base)
                    y, _cache = model._forward(x, params)  # the output, at readings only
                    first = compile_seconds if len(history) == readings_before + 1 else None
                    on_log(LogEvent(i, value, x, d, y, step.compiled, first))
            params, state = new_params, new_state
            model._params = params
            if on_step is not None and j % every == 0:
                on_step(j, state)
        lo = hi
    arrays = [*params.values(), *state.values()]  # one sync per array, after the loop
    if start < iters and not all(bool(xp.all(xp.isfinite(a))) for a in arrays):
        raise _diverged(model, optimizer, clip, good, iters - 1, math.nan, history, last=True)
    model._params = params  # checked just above: the setter's own check would sync again
    seconds = time.perf_counter() - began
    return TrainResult(
        params, state, history, iters - start, seconds, step.compiled, compile_seconds
    )


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


def _step_for(model: Any, optimizer: Any, truncate: Any, clip: Any, compile: str) -> Any:
    """``make_step``'s step, kept with the model (in ``model._steps``, for as long as the
    model lives) for its next ``train`` call with the same optimiser and settings (a
    resumed or continued run): a compiled step is compiled once, not once per call."""
    steps = model.__dict__.setdefault("_steps", {})
    key = (optimizer, truncate, clip, compile)
    if key not in steps:
        steps[key] = make_step(model, optimizer, truncate=truncate, clip=clip, compile=compile)
    return steps[key]


def _check_stream(model: Any, stream: Any, iters: int, start: Any) -> None:
    """Refuse a stream that is not an xpnn stream or does not fit the model, and a bad
    ``start``; check the first batch through the model's public ``loss`` (shapes, dtype,
    finiteness: one sync, outside the loop)."""
    if not callable(getattr(stream, "batches", None)) or not hasattr(stream, "batch_size"):
        msg = f"stream must be an xpnn.datasets stream, got {type(stream).__name__}"
        raise XpnnTypeError(msg)
    stream_axis = getattr(stream, "batch_axis", model.batch_axis)
    if stream_axis != model.batch_axis:
        msg = (
            f"stream has its batch on axis {stream_axis} but {type(model).__name__} takes "
            f"batches on axis {model.batch_axis}; build the stream with "
            f"batch_axis={model.batch_axis}"
        )
        raise XpnnValueError(msg)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= iters:
        msg = f"start must be an integer from 0 to iters={iters}, got {shown(start)}"
        raise XpnnValueError(msg)
    if start < iters:
        try:
            x, d = stream.batches(start, start + 1)
        except XpnnError:
            raise
        except (ValueError, MemoryError) as exc:  # NumPy: "array is too big", or no memory
            msg = (
                f"the stream cannot draw batches of batch_size={stream.batch_size} "
                f"({type(exc).__name__}: {exc}); use a smaller batch_size"
            )
            raise XpnnValueError(msg) from None
        model.loss(model.asarray(x, name="x"), model.asarray(d, name="d"))


def _diverged(
    model: Any,
    optimizer: Any,
    clip: float | None,
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
    what = (
        "a parameter or optimiser state is not finite after the last iteration"
        if last
        else f"the loss at iteration {iteration} is {loss}"
    )
    tips = divergence_advice(
        lr=optimizer.lr,
        clip=clip,
        momentum=getattr(optimizer, "momentum", None),
        init=getattr(model, "init", None),
        weight_init_std=getattr(model, "weight_init_std", None),
    )
    msg = (
        f"training diverged: {what}; the parameters were restored to the last finite "
        f"reading. {tips}."
    )
    return TrainingDiverged(
        msg,
        iteration=iteration,
        params=params,
        history=history,
        state=state,
        good_step=good_step,
    )


def divergence_advice(
    *,
    lr: float,
    clip: float | None,
    momentum: float | None = None,
    init: str | None = None,
    weight_init_std: float | None = None,
    can_clip: bool = True,
    flags: bool = False,
) -> str:
    """What to try after a divergence: ``"Try a lower learning rate than 5, ..."``,
    naming the settings as ``train``'s arguments or (``flags``) as the command line's."""

    def name(argument: str, flag: str) -> str:
        return flag if flags else argument

    tips = [f"a lower {name('learning rate', '--lr')} than {lr:g}"]
    if clip is None and can_clip:
        tips.append(name("gradient clipping (clip=1.0)", "--clip 1.0"))
    if momentum is not None:
        tips.append(f"a lower {name('momentum', '--momentum')} than {momentum:g}")
    if init == "std":
        tips.append(name('init="xavier"', "--init xavier"))
    if weight_init_std is not None:
        tips.append(
            f"a smaller {name('weight_init_std', '--weight-init-std')} than {weight_init_std:g}"
        )
    joined = tips[0] if len(tips) == 1 else f"{', '.join(tips[:-1])} or {tips[-1]}"
    return f"Try {joined}"
