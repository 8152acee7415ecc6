"""The worker side of data-parallel training: a handler on every dask worker's server.

``Gradients`` (``xpnn.parallel.gradients``) talks to each worker directly over dask's
own connections, not through the scheduler: ``SessionPlugin``, registered once on the
cluster (and so on every worker that joins it later), adds the ``xpnn_gradients``
operation to each worker. A run opens a session on each worker it uses (the ``Shard``:
model class, configuration, backend and dtype, stream, truncation; sent once), then
asks it for one shard's loss and gradients a step, and closes it at the end. Where the
workers span several hosts, one worker a host (the group's leader) is asked for its
host's shards instead: it asks its peers for theirs directly, worker to worker, computes
its own meanwhile, and answers with their sum (or with the peers that failed it, whose
shards the client then asks of each worker itself).

It imports dask.distributed: ``Gradients`` imports it once it has a client.

The arithmetic runs in the worker's threads, never on its event loop, so the worker
keeps answering the scheduler's heartbeats. A shard cut into several row ranges (one a
thread; the client cuts them) runs them in as many threads at once (NumPy releases the
GIL in BLAS and large elementwise operations) and sums them in range order, each
weighted by its share of the rows.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Mapping
from typing import Any

from distributed import WorkerPlugin
from distributed.protocol import to_serialize

from xpnn.backends import float_errors_ignored, to_numpy

HANDLER = "xpnn_gradients"
"""The operation's name on the worker's server."""

PLUGIN = "xpnn-gradients"
"""The plugin's name on the cluster."""


class Shard:
    """What a worker holds for a run: the model's class, configuration, backend and
    dtype, the stream and the truncation. The worker's model is made on first use and
    not sent back."""

    def __init__(self, model: Any, stream: Any, truncate: int | None) -> None:
        host = {k: to_numpy(v) for k, v in model.params.items()}
        self.kind, self.config, self.backend = type(model), model.config, model.backend
        self.dtype = next(iter(host.values())).dtype.name
        self.first, self.stream, self.truncate = host, stream, truncate
        self.streams: dict[tuple[int, int], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "streams")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, streams={})

    def grads(
        self, params: Mapping[str, Any], i: int, lo: int, hi: int
    ) -> tuple[float, dict[str, Any]]:
        """Rows ``lo .. hi - 1`` of iteration ``i``: their mean loss and its gradients
        (host arrays), with ``params`` (host arrays). NumPy's overflow warnings are
        silenced, as the command line does for a run: the loop's readings catch a
        non-finite loss.

        Safe across threads: each range of rows draws from a stream of its own (a stream
        keeps the draws of the rows it was last asked for), and a model made twice by
        two threads at once is the same model."""
        model = self.__dict__.get("model")
        if model is None:
            model = self.kind.from_config(
                self.config, self.first, backend=self.backend, dtype=self.dtype
            )
            self.model = model
        stream = self.streams.get((lo, hi))
        if stream is None:  # a shallow copy: a SampleStream's arrays are shared
            stream = self.streams.setdefault((lo, hi), copy.copy(self.stream))
        x, d = stream.batch_rows(i, lo, hi)
        x, d = model.asarray(x, name="x"), model.core.targets(model.asarray(d, name="d"))
        on = {k: model.asarray(v, name=k) for k, v in params.items()}
        with float_errors_ignored():  # a diverging run ends in TrainingDiverged, as ever
            loss, grads = model.core.value_and_grad(on, x, d, self.truncate)
            return float(loss), {k: to_numpy(g) for k, g in grads.items()}

    def parts_grads(
        self, params: Mapping[str, Any], i: int, cuts: list[tuple[int, int]], run: Any
    ) -> Any:
        """An awaitable of ``grads`` of the rows of the ranges ``cuts`` (``[lo, hi)``
        each, one after another), each range computed by ``run(fn, *args)`` (a thread's
        awaitable), summed in range order, each weighted by its share of the rows."""
        if len(cuts) == 1:
            ((lo, hi),) = cuts
            return run(self.grads, params, i, lo, hi)

        async def summed() -> tuple[float, dict[str, Any]]:
            results = await asyncio.gather(*(run(self.grads, params, i, a, b) for a, b in cuts))
            return weighted_sum(results, [b - a for a, b in cuts])

        return summed()


def weighted_sum(
    results: list[tuple[float, dict[str, Any]]], rows: list[int]
) -> tuple[float, dict[str, Any]]:
    """The mean loss and gradients (host arrays) of parts of ``rows`` rows each, from
    each part's ``results``: summed in order, each weighted by its share of the rows."""
    whole = sum(rows)
    weights = [r / whole for r in rows]
    loss = math.fsum(w * part for w, (part, _g) in zip(weights, results, strict=True))
    total: dict[str, Any] = {}
    for w, (_loss, g) in zip(weights, results, strict=True):
        for key, value in g.items():
            total[key] = value * w if key not in total else total[key] + value * w
    return loss, total


class SessionPlugin(WorkerPlugin):
    """Adds the ``xpnn_gradients`` operation to a worker's server, and keeps its runs'
    sessions (``Shard`` by session id)."""

    idempotent = True  # registered by every run: the first one stays

    def setup(self, worker: Any) -> None:
        self.worker, self.sessions = worker, {}
        worker.handlers[HANDLER] = self.handle

    def teardown(self, worker: Any) -> None:
        worker.handlers.pop(HANDLER, None)
        self.sessions.clear()

    async def handle(
        self,
        action: str,
        session: str,
        shard: Shard | None = None,
        params: Mapping[str, Any] | None = None,
        i: int = 0,
        cuts: list[tuple[int, int]] | None = None,
        group: list[tuple[str, list[tuple[int, int]]]] | None = None,
    ) -> dict[str, Any] | None:
        """``open`` keeps ``shard``; ``step`` answers ``{"loss", "grads"}`` for the rows
        of the ranges ``cuts`` of iteration ``i`` with ``params`` (None: no such session,
        open it again); ``group`` answers ``{"loss", "grads", "rows"}`` for the shards
        of ``group`` (each a worker's address and its ``cuts``), or ``{"lost": [the
        addresses that failed]}``; ``close`` drops the session."""
        if action == "open":
            self.sessions[session] = shard
            return {}
        if action == "close":
            self.sessions.pop(session, None)
            return {}
        held = self.sessions.get(session)
        if held is None:
            return None
        loop = asyncio.get_running_loop()
        executor = self.worker.executor

        def run(fn: Any, *args: Any) -> Any:
            return loop.run_in_executor(executor, fn, *args)

        if action == "group":
            return await self.sum_group(held, session, params, i, group, run)
        loss, grads = await held.parts_grads(params, i, [tuple(c) for c in cuts], run)
        return {"loss": loss, "grads": to_serialize(grads)}

    async def sum_group(
        self,
        held: Shard,
        session: str,
        params: Mapping[str, Any],
        i: int,
        group: list[tuple[str, list[tuple[int, int]]]],
        run: Any,
    ) -> dict[str, Any]:
        """The shards of ``group``, in order: this worker's computed here, the others'
        asked of their workers at once (their sessions opened by the client), summed
        each weighted by its share of the group's rows. A peer that cannot be reached
        or has no session is not this worker's failure: it is named in ``lost``."""
        shipped = to_serialize(params)

        async def one(address: str, cuts: list[tuple[int, int]]) -> Any:
            if address == self.worker.address:
                return await held.parts_grads(params, i, cuts, run)
            try:
                answer = await getattr(self.worker.rpc(address), HANDLER)(
                    action="step", session=session, params=shipped, i=i, cuts=cuts
                )
            except OSError:  # dask's CommClosedError too
                return None
            return None if answer is None else (answer["loss"], answer["grads"])

        members = [(address, [tuple(c) for c in cuts]) for address, cuts in group]
        results = await asyncio.gather(*(one(a, cuts) for a, cuts in members))
        lost = [a for (a, _c), r in zip(members, results, strict=True) if r is None]
        if lost:
            return {"lost": lost}
        rows = [cuts[-1][1] - cuts[0][0] for _a, cuts in members]
        loss, grads = weighted_sum(results, rows)
        return {"loss": loss, "grads": to_serialize(grads), "rows": sum(rows)}
