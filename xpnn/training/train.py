"""The training loop: batches from a stream, one ``make_step`` step per batch, a loss
history; the run's place is a ``TrainState`` (``xpnn.training.state``).

Everything is checked once, before the first update. The loop then never reads an array
value except every ``log_every`` iterations (and at the last one), where it reads the
batch's loss, checks that it and the parameters and optimiser state it came from are
finite, and appends it to the history: on a GPU each such read waits for the device.
Data moves to the device a chunk of iterations at a time, not batch by batch. A compiled
JAX step runs all the iterations from one reading to the next in one call (``Step.loop``),
so that no Python dispatch is paid per iteration.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from xpnn.checks import check_history, check_size
from xpnn.datasets import CHUNK
from xpnn.errors import (
    NonFiniteError,
    XpnnTypeError,
)
from xpnn.step import Step, check_step_args, make_step
from xpnn.training.boundary import all_finite, check_stream, diverged
from xpnn.training.state import LogEvent, RunStats, TrainState


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
    on_step: Callable[[TrainState], None] | None = None,
    on_step_every: int = 1,
    history: Sequence[tuple[int, float]] | None = None,
    chunks: int | None = None,
    parallel: Any = None,
) -> TrainState:
    """Train ``model`` with ``optimizer`` on batches from ``stream``; return the
    ``TrainState`` reached, whose parameters ``model.params`` then holds too.

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
        The first iteration (0, or where a checkpoint left off: a ``TrainState``'s ``step``).
    log_every : int
        Iterations between loss readings; iteration ``start`` and the last are always read.
    truncate : int, optional
        Truncated BPTT block length (RNN only).
    clip : float, optional
        Clip the gradients to this global norm.
    compile : {"auto", "on", "off"}
        Whether the step is compiled (see ``make_step``).
    state : dict of arrays, optional
        The optimiser state to continue from (a ``TrainState``'s ``opt_state``);
        ``optimizer.init`` if None.
    on_log : callable, optional
        Called with a ``LogEvent`` at every reading.
    on_step : callable, optional
        Called with the ``TrainState`` after every multiple of ``on_step_every``
        iterations (checkpoints use it); its ``stats`` are zeros.
    on_step_every : int
        See ``on_step``. A compiled JAX step runs the iterations between readings (and
        between ``on_step`` calls) in one call, so a larger value keeps those runs long.
    history : sequence of (int, float), optional
        The readings to continue (a ``TrainState``'s ``history``): ``(iteration, finite
        loss)`` pairs, iterations increasing and below ``start``.
    chunks : int, optional
        Dask only: batch rows per chunk (default ``backend.default_chunk_rows`` of the
        batch size, so every batch is whole chunks); other backends ignore it.
    parallel : distributed.Client, optional
        Train data-parallel on the client's workers, one task per worker per step
        (``xpnn.parallel.train.train_parallel``): the same run, to rounding.

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
    if parallel is not None:
        from xpnn.parallel.train import train_parallel

        return train_parallel(
            model,
            optimizer,
            stream,
            client=parallel,
            iters=iters,
            start=start,
            log_every=log_every,
            truncate=truncate,
            clip=clip,
            compile=compile,
            state=state,
            on_log=on_log,
            on_step=on_step,
            on_step_every=on_step_every,
            history=history,
            chunks=chunks,
        )
    iters, log_every = check_size(iters, "iters"), check_size(log_every, "log_every")
    every = check_size(on_step_every, "on_step_every") if on_step is not None else None
    check_step_args(model, optimizer, truncate, clip)
    check_compile(compile)
    for name, callback in (("on_log", on_log), ("on_step", on_step)):
        if callback is not None and not callable(callback):
            msg = f"{name} must be a function or None, got {type(callback).__name__}"
            raise XpnnTypeError(msg)
    check_stream(model, stream, iters, start)
    history = check_history(history, before=start)
    if state is None:
        state = optimizer.init(model.params)
    optimizer.check_state(model.params, state, values=True)  # one sync
    compiler = compiler_for(model.backend, compile, steps=iters)
    compiled = compiler is not None
    step = _step_for(model, optimizer, truncate, clip, "on" if compiled else "off")
    xp, axis, batch = model.xp, model.batch_axis, stream.batch_size
    rows = default_chunk_rows(batch) if chunks is None else check_size(chunks, "chunks")
    target_axis = getattr(stream, "target_axis", axis)  # sine: (T, N, 1) inputs, (N, 1) targets
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
                new_params, new_state, loss = step.unchecked(
                    params, state, xs[i - base], ds[i - base]
                )
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
                finite = math.isfinite(value) and all_finite(xp, params, state)
                if not finite:
                    raise diverged(model, optimizer, clip, good, i, value, history)
                good = (i, params, state)
                history.append((i, value))
                if on_log is not None:
                    x = iteration_batch(x_all, axis, batch, i - base)
                    d = iteration_batch(d_all, target_axis, batch, i - base)
                    y, _cache = model.forward_unchecked(x, params)  # the output, at readings only
                    first = compile_seconds if len(history) == readings_before + 1 else None
                    on_log(LogEvent(i, value, x, d, y, step.compiled, first, params))
            params, state = new_params, new_state
            if on_step is not None and j % every == 0:
                on_step(TrainState(j, params, state, tuple(history)))
        lo = hi
    if start < iters:
        # the last update's result: the state in one sync, the parameters by the setter's
        # own finiteness check (one sync each), so nothing is checked twice
        if not all_finite(xp, state):
            raise diverged(model, optimizer, clip, good, iters - 1, math.nan, history, last=True)
        try:
            model.params = params
        except NonFiniteError:
            raise diverged(
                model, optimizer, clip, good, iters - 1, math.nan, history, last=True
            ) from None
    stats = RunStats(time.perf_counter() - began, step.compiled, compile_seconds)
    return TrainState(iters, params, state, tuple(history), stats)


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


def _step_for(model: Any, optimizer: Any, truncate: Any, clip: Any, compile: str) -> Step:
    """``make_step``'s step, kept in ``_STEPS`` for the model's next ``train`` call with
    the same optimiser and settings (a resumed or continued run): a compiled step is
    compiled once, not once per call."""
    steps = _STEPS.setdefault(model, {})
    key = (optimizer, truncate, clip, compile)
    if key not in steps:
        steps[key] = make_step(model, optimizer, truncate=truncate, clip=clip, compile=compile)
    return steps[key]
