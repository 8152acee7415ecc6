"""``train_parallel``: data-parallel training on a dask cluster, one task per worker per
step.

Each batch is cut into one shard of rows per worker (``shard_bounds``). Each step sends
every worker, pinned to its shard (``workers=``, loosely, so that a dead worker's task
reruns elsewhere), the parameters and the iteration; the task makes its rows of the
batch from the stream (``stream.batch_rows``), runs the model's unchanged forward, loss
and backward on its backend, and returns its loss and gradients as host arrays. The
client sums them in shard order, each weighted by its share of the rows (the loss is a
batch mean, so this is the whole batch's gradient), clips the sum, and applies the
optimiser once. Only parameters, gradients and the loss cross the network per step; the
model and the stream (a ``SampleStream``'s arrays included) go to every worker once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from xpnn.backends import Array, check_compile, float_errors_ignored, to_numpy
from xpnn.checks import check_history, check_size
from xpnn.errors import XpnnTypeError, XpnnValueError, check_choice
from xpnn.step import check_step_args, clip_by_global_norm
from xpnn.training.boundary import all_finite, check_stream, diverged
from xpnn.training.state import LogEvent, RunStats, TrainState


def shard_bounds(batch_size: int, shards: int) -> list[tuple[int, int]]:
    """The rows ``[lo, hi)`` of each of ``shards`` shards of a batch: as even as can be,
    the larger shards last."""
    return [(s * batch_size // shards, (s + 1) * batch_size // shards) for s in range(shards)]


class Shard:
    """What every worker holds for a run: the model's class, configuration, backend and
    dtype, the stream and the truncation. The worker's model is made on first use and
    not sent back."""

    def __init__(self, model: Any, stream: Any, truncate: int | None) -> None:
        host = {k: to_numpy(v) for k, v in model.params.items()}
        self.kind, self.config, self.backend = type(model), model.config, model.backend
        self.dtype = next(iter(host.values())).dtype.name
        self.first, self.stream, self.truncate = host, stream, truncate

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "model"}

    def grads(
        self, params: Mapping[str, Any], i: int, lo: int, hi: int
    ) -> tuple[float, dict[str, Any]]:
        """Rows ``lo .. hi - 1`` of iteration ``i``: their mean loss and its gradients
        (host arrays), with ``params`` (host arrays). NumPy's overflow warnings are
        silenced, as the command line does for a run: the client's readings catch a
        non-finite loss."""
        if "model" not in self.__dict__:
            self.model = self.kind.from_config(
                self.config, self.first, backend=self.backend, dtype=self.dtype
            )
        model = self.model
        x, d = self.stream.batch_rows(i, lo, hi)
        x, d = model.asarray(x, name="x"), model.asarray(d, name="d")
        on = {k: model.asarray(v, name=k) for k, v in params.items()}
        with float_errors_ignored():  # a diverging run ends in TrainingDiverged, as ever
            _y, cache = model.forward_unchecked(x, on)
            loss = model.loss_unchecked(cache, d)
            grads = model.backward_unchecked(cache, d, self.truncate)
            return float(loss), {k: to_numpy(g) for k, g in grads.items()}


class _WholeBatch:
    """``stream`` as ``train``'s checks see it, but whose ``batches(i, i + 1)`` makes
    iteration ``i``'s batch alone (``batch_rows``), not the stream's chunk of 128."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.batch_size = stream, stream.batch_size
        for name in ("batch_axis", "target_axis"):
            if hasattr(stream, name):
                setattr(self, name, getattr(stream, name))

    def batches(self, start: int, stop: int) -> tuple[Any, Any]:
        return self.stream.batch_rows(start, 0, self.batch_size)


def _shard_grads(
    shard: Shard, params: Mapping[str, Any], i: int, lo: int, hi: int
) -> tuple[float, dict[str, Any]]:
    return shard.grads(params, i, lo, hi)


def check_client(client: Any) -> Any:
    """``client`` must be a ``distributed.Client``."""
    try:
        from distributed import Client
    except ImportError:
        Client = None
    if Client is None or not isinstance(client, Client):
        msg = f"parallel must be a distributed.Client, got {type(client).__name__}"
        raise XpnnTypeError(msg)
    return client


def train_parallel(
    model: Any,
    optimizer: Any,
    stream: Any,
    *,
    client: Any,
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
    reduce: str = "client",
) -> TrainState:
    """``xpnn.training.train.train`` on the workers of ``client``: the same arguments,
    the same checks, logging, divergence handling, ``on_log``/``on_step`` calls and
    result, to rounding (the batch's gradient is summed from the shards').

    The workers run the forward and backward uncompiled (``compile`` is checked, and
    ``"on"`` refused); ``chunks`` is dask's and ignored. ``on_log``'s ``x``, ``d``, ``y``
    are the whole batch, made and run forward on the client, at readings only.

    ``reduce="client"`` (what ``train(..., parallel=client)`` uses) sums the shards'
    gradients on the client, in shard order; ``reduce="tree"`` sums them pairwise on
    the workers, in a fixed binary tree, so the client receives one gradient a step
    instead of one a worker, at the price of one more task round trip per tree level:
    for gradients large beside the client's link.

    Raises
    ------
    XpnnTypeError
        ``client`` is not a ``distributed.Client``.
    XpnnValueError
        What ``train`` refuses; a dask model; a batch smaller than the number of workers;
        a stream without ``batch_rows``; ``compile="on"``.
    TrainingDiverged
        As ``train``.
    """
    client = check_client(client)
    reduce = check_choice(reduce, "reduction", ("client", "tree"))
    iters, log_every = check_size(iters, "iters"), check_size(log_every, "log_every")
    every = check_size(on_step_every, "on_step_every") if on_step is not None else None
    check_step_args(model, optimizer, truncate, clip)
    if check_compile(compile) == "on":
        msg = 'compile="on": parallel training runs the workers\' steps uncompiled'
        raise XpnnValueError(msg)
    if model.backend == "dask":
        msg = 'parallel training runs each worker\'s rows on its own backend; use backend="numpy"'
        raise XpnnValueError(msg)
    for name, callback in (("on_log", on_log), ("on_step", on_step)):
        if callback is not None and not callable(callback):
            msg = f"{name} must be a function or None, got {type(callback).__name__}"
            raise XpnnTypeError(msg)
    if not callable(getattr(stream, "batch_rows", None)):
        msg = f"parallel training needs a stream with batch_rows, got {type(stream).__name__}"
        raise XpnnTypeError(msg)
    check_stream(model, _WholeBatch(stream), iters, start)
    history = check_history(history, before=start)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])  # all, not the first 5
    if not workers:
        msg = "the dask cluster has no workers"
        raise XpnnValueError(msg)
    if stream.batch_size < len(workers):
        msg = (
            f"batch_size={stream.batch_size} is smaller than the number of workers "
            f"({len(workers)}): every worker needs a row"
        )
        raise XpnnValueError(msg)
    if state is None:
        state = optimizer.init(model.params)
    optimizer.check_state(model.params, state, values=True)

    xp, batch = model.xp, stream.batch_size
    bounds = shard_bounds(batch, len(workers))
    shard = client.scatter(Shard(model, stream, truncate), broadcast=True, hash=False)
    params, state = model.params, dict(state)
    good = (start, params, state)  # the last finite reading: iteration, params, state
    began, first = time.perf_counter(), 0.0
    try:
        for i in range(start, iters):
            host = {k: to_numpy(v) for k, v in params.items()}
            value, grads = _summed(client, shard, host, i, bounds, workers, reduce, model)
            if i == start:  # the workers build their models and streams: timed apart
                first = time.perf_counter() - began
            if clip is not None:
                grads = clip_by_global_norm(grads, clip, xp)
            new_params, new_state = optimizer.apply(params, grads, state, xp=xp)
            if i % log_every == 0 or i == iters - 1:
                if not math.isfinite(value):
                    raise diverged(model, optimizer, clip, good, i, value, history)
                good = (i, params, state)
                history.append((i, value))
                if on_log is not None:
                    x_host, d_host = stream.batch_rows(i, 0, batch)
                    x, d = model.asarray(x_host, name="x"), model.asarray(d_host, name="d")
                    y, _cache = model.forward_unchecked(x, params)
                    on_log(LogEvent(i, value, x, d, y, params=params))
            params, state = new_params, new_state
            if on_step is not None and (i + 1) % every == 0:
                on_step(TrainState(i + 1, params, state, tuple(history)))
    finally:
        client.cancel([shard])
    if start < iters:
        if not all_finite(xp, params, state):
            raise diverged(model, optimizer, clip, good, iters - 1, math.nan, history, last=True)
        model.params = params
    stats = RunStats(time.perf_counter() - began, compile_seconds=first)
    return TrainState(iters, params, state, tuple(history), stats)


def _summed(
    client: Any,
    shard: Any,
    host: dict[str, Any],
    i: int,
    bounds: list[tuple[int, int]],
    workers: list[str],
    reduce: str,
    model: Any,
) -> tuple[float, dict[str, Array]]:
    """Iteration ``i``'s batch loss and gradients (arrays of ``model``), from one task a
    shard, shard ``s`` pinned to worker ``workers[s]`` (loosely: a dead
    worker's task reruns elsewhere), each weighted by its share of the rows."""
    batch = bounds[-1][1]
    weights = [(hi - lo) / batch for lo, hi in bounds]
    where = [[workers[s]] for s in range(len(bounds))]
    tag = f"{shard.key}-{i}"
    leaf = _shard_grads if reduce == "client" else _weighted_shard_grads
    level = [
        client.submit(
            leaf,
            shard,
            host,
            i,
            lo,
            hi,
            *([] if reduce == "client" else [w]),
            key=f"xpnn-grads-{tag}-{s}",
            workers=where[s],
            allow_other_workers=True,
            pure=False,
        )
        for s, ((lo, hi), w) in enumerate(zip(bounds, weights, strict=True))
    ]
    if reduce == "client":
        results = client.gather(level)
        value = math.fsum(w * loss for w, (loss, _g) in zip(weights, results, strict=True))
        return value, _weighted_sum(model, weights, [g for _loss, g in results])
    depth = 0
    while len(level) > 1:  # pairs (0, 1), (2, 3), ...; an odd last one goes up alone
        depth += 1
        pairs = [level[k : k + 2] for k in range(0, len(level), 2)]
        level = [
            pair[0]
            if len(pair) == 1
            else client.submit(
                _add,
                *pair,
                key=f"xpnn-sum-{tag}-{depth}-{k}",
                workers=where[k * 2**depth],  # the left operand's worker
                allow_other_workers=True,
                pure=False,
            )
            for k, pair in enumerate(pairs)
        ]
    value, grads = level[0].result()
    return value, {k: model.asarray(g, name=k) for k, g in grads.items()}


def _weighted_shard_grads(
    shard: Shard, params: Mapping[str, Any], i: int, lo: int, hi: int, weight: float
) -> tuple[float, dict[str, Any]]:
    loss, grads = shard.grads(params, i, lo, hi)
    return weight * loss, {k: g * weight for k, g in grads.items()}


def _add(
    a: tuple[float, dict[str, Any]], b: tuple[float, dict[str, Any]]
) -> tuple[float, dict[str, Any]]:
    return a[0] + b[0], {k: a[1][k] + b[1][k] for k in a[1]}


def _weighted_sum(
    model: Any, weights: list[float], grads: list[dict[str, Any]]
) -> dict[str, Array]:
    """``sum(w * g)`` over the shards, in shard order, as arrays of the model."""
    total: dict[str, Array] = {}
    for w, g in zip(weights, grads, strict=True):
        for key, value in g.items():
            part = model.asarray(value, name=key) * w
            total[key] = part if key not in total else total[key] + part
    return total
