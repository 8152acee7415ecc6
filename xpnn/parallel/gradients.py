"""A gradient source on dask.distributed: one task a worker a step.

``xpnn.train(..., parallel=client)`` trains with ``Gradients(client, model, stream,
truncate)``: called as ``loss, grads = gradients(params, i)``, it cuts iteration ``i``'s
batch into one shard of rows per worker (``shard_bounds``), sends every worker, pinned
to its shard (``workers=``, loosely, so that a dead worker's task reruns elsewhere), the
parameters and the iteration; the task makes its rows of the batch from the stream
(``stream.batch_rows``), runs the model's unchanged ``core.value_and_grad`` on its
backend, and returns its loss and gradients as host arrays. The client sums them in
shard order, each weighted by its share of the rows (the loss is a batch mean, so this
is the whole batch's gradient). Only parameters, gradients and the loss cross the
network per step; the model and the stream (a ``SampleStream``'s arrays included) go to
every worker once.

Everything else of a run (clipping, the optimiser, readings, divergence handling,
callbacks, checkpoints) is the training loop's (``xpnn.training.loop``): this module
knows nothing of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xpnn.backends import Array, float_errors_ignored, to_numpy
from xpnn.errors import XpnnTypeError, XpnnValueError, check_choice


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
        silenced, as the command line does for a run: the loop's readings catch a
        non-finite loss."""
        if "model" not in self.__dict__:
            self.model = self.kind.from_config(
                self.config, self.first, backend=self.backend, dtype=self.dtype
            )
        model = self.model
        x, d = self.stream.batch_rows(i, lo, hi)
        x, d = model.asarray(x, name="x"), model.core.targets(model.asarray(d, name="d"))
        on = {k: model.asarray(v, name=k) for k, v in params.items()}
        with float_errors_ignored():  # a diverging run ends in TrainingDiverged, as ever
            loss, grads = model.core.value_and_grad(on, x, d, self.truncate)
            return float(loss), {k: to_numpy(g) for k, g in grads.items()}


def _shard_grads(
    shard: Shard, params: Mapping[str, Any], i: int, lo: int, hi: int
) -> tuple[float, dict[str, Any]]:
    return shard.grads(params, i, lo, hi)


def _weighted_shard_grads(
    shard: Shard, params: Mapping[str, Any], i: int, lo: int, hi: int, weight: float
) -> tuple[float, dict[str, Any]]:
    loss, grads = shard.grads(params, i, lo, hi)
    return weight * loss, {k: g * weight for k, g in grads.items()}


def _add(
    a: tuple[float, dict[str, Any]], b: tuple[float, dict[str, Any]]
) -> tuple[float, dict[str, Any]]:
    return a[0] + b[0], {k: a[1][k] + b[1][k] for k in a[1]}


class Gradients:
    """The gradient source of data-parallel training on ``client``'s workers.

    Parameters
    ----------
    client : distributed.Client
        A running client with at least one worker (and no more workers than the batch
        has rows).
    model : MLP or RNN
        The model (on a backend that is not dask; each worker runs its rows on that
        backend), at its starting parameters.
    stream : a ``datasets`` stream with ``batch_rows``
    truncate : int or None
        Truncated BPTT block length (checked by the caller).
    reduce : {"client", "tree"}
        ``"client"`` sums the shards' gradients on the client, in shard order;
        ``"tree"`` sums them pairwise on the workers, in a fixed binary tree, so the
        client receives one gradient a step instead of one a worker, at the price of one
        more task round trip per tree level: for gradients large beside the client's link.

    Raises
    ------
    XpnnTypeError
        ``client`` is not a ``distributed.Client``.
    XpnnValueError
        The client is closed or its cluster has no workers; a dask model; a batch smaller
        than the number of workers.
    """

    def __init__(
        self, client: Any, model: Any, stream: Any, truncate: int | None, reduce: str = "client"
    ) -> None:
        self.client = check_client(client)
        self.reduce = check_choice(reduce, "reduce", ("client", "tree"))
        if model.backend == "dask":
            msg = (
                'parallel training runs each worker\'s rows on its own backend; use backend="numpy"'
            )
            raise XpnnValueError(msg, argument="parallel")
        self.workers = running_workers(self.client)
        if stream.batch_size < len(self.workers):
            msg = (
                f"batch_size={stream.batch_size} is smaller than the number of workers "
                f"({len(self.workers)}): every worker needs a row"
            )
            raise XpnnValueError(msg, argument="batch_size")
        self.model = model
        self.bounds = shard_bounds(stream.batch_size, len(self.workers))
        self.shard = client.scatter(Shard(model, stream, truncate), broadcast=True, hash=False)

    def __call__(self, params: Mapping[str, Array], i: int) -> tuple[float, dict[str, Array]]:
        """Iteration ``i``'s batch loss and gradients (arrays of the model), from one task
        a shard, shard ``s`` pinned to worker ``workers[s]`` (loosely: a dead worker's
        task reruns elsewhere), each weighted by its share of the rows."""
        host = {k: to_numpy(v) for k, v in params.items()}
        batch = self.bounds[-1][1]
        weights = [(hi - lo) / batch for lo, hi in self.bounds]
        where = [[w] for w in self.workers]
        tag = f"{self.shard.key}-{i}"
        tree = self.reduce == "tree"
        level = [
            self.client.submit(
                _weighted_shard_grads if tree else _shard_grads,
                self.shard,
                host,
                i,
                lo,
                hi,
                *([w] if tree else []),
                key=f"xpnn-grads-{tag}-{s}",
                workers=where[s],
                allow_other_workers=True,
                pure=False,
            )
            for s, ((lo, hi), w) in enumerate(zip(self.bounds, weights, strict=True))
        ]
        if not tree:
            results = self.client.gather(level)
            value = math.fsum(w * loss for w, (loss, _g) in zip(weights, results, strict=True))
            return value, self._weighted_sum(weights, [g for _loss, g in results])
        depth = 0
        while len(level) > 1:  # pairs (0, 1), (2, 3), ...; an odd last one goes up alone
            depth += 1
            pairs = [level[k : k + 2] for k in range(0, len(level), 2)]
            level = [
                pair[0]
                if len(pair) == 1
                else self.client.submit(
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
        return value, {k: self.model.asarray(g, name=k) for k, g in grads.items()}

    def _weighted_sum(self, weights: list[float], grads: list[dict[str, Any]]) -> dict[str, Array]:
        """``sum(w * g)`` over the shards, in shard order, as arrays of the model."""
        total: dict[str, Array] = {}
        for w, g in zip(weights, grads, strict=True):
            for key, value in g.items():
                part = self.model.asarray(value, name=key) * w
                total[key] = part if key not in total else total[key] + part
        return total

    def close(self) -> None:
        """Release the workers' copies of the model and the stream."""
        self.client.cancel([self.shard])


def check_client(client: Any) -> Any:
    """``client`` must be a ``distributed.Client``."""
    try:
        from distributed import Client
    except ImportError:
        Client = None
    if Client is None or not isinstance(client, Client):
        msg = f"parallel must be a distributed.Client, got {type(client).__name__}"
        raise XpnnTypeError(msg, argument="parallel")
    return client


def running_workers(client: Any) -> list[str]:
    """The addresses of ``client``'s workers, sorted (all of them, not dask's first 5).

    Raises
    ------
    XpnnValueError
        The client is closed, its cluster is gone, or it has no workers.
    """
    status = getattr(client, "status", "running")
    if status != "running":
        msg = f"parallel: the distributed.Client is {status}; connect a running one"
        raise XpnnValueError(msg, argument="parallel")
    try:
        info = client.scheduler_info(n_workers=-1)
    except (OSError, TimeoutError) as exc:
        msg = f"parallel: the dask scheduler does not answer ({type(exc).__name__}: {exc})"
        raise XpnnValueError(msg, argument="parallel") from None
    workers = sorted(info.get("workers", {}))
    if not workers:
        msg = (
            "parallel: the dask cluster has no workers (or was closed); start workers, or "
            "connect a client to a running cluster"
        )
        raise XpnnValueError(msg, argument="parallel")
    return workers
