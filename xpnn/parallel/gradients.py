"""A gradient source on dask.distributed: one shard a worker a step, asked of the
worker directly.

``xpnn.train(..., parallel=client)`` trains with ``Gradients(client, model, stream,
truncate)``: called as ``loss, grads = gradients(params, i)``, it cuts iteration ``i``'s
batch into one shard of rows per worker (``shard_bounds``) and asks every worker at once,
over dask's own connections and not through the scheduler (``xpnn.parallel.session``),
for its shard's mean loss and gradients: the worker makes its rows of the batch from the
stream (``stream.batch_rows``), runs the model's unchanged ``core.value_and_grad`` on its
backend, in as many parts as it has threads, and answers with host arrays. The client
sums them in shard order, each weighted by its share of the rows (the loss is a batch
mean, so this is the whole batch's gradient). The model and the stream (a
``SampleStream``'s arrays included) go to each worker once, when the source opens its
session there; per step only parameters, gradients and the loss cross the network.

Where the workers span more than one host (``host_of``), the client asks one worker a
host, the group's leader, for the whole group (``host_groups``): the leader asks its
peers on the host directly, computes its own shard meanwhile, and answers with the
group's sum (in shard order, each shard weighted by its share of the group's rows) and
its rows; the client sums the groups in order, weighted the same way. The client's work
a step then grows with the hosts, not the workers. On one host every worker is asked
directly: there a leader would only add a hop.

A worker that stops answering loses nothing: its shard is asked of a running worker
(the session opened there first), which makes the same rows and so the same numbers.
A group whose leader stops answering, or whose leader names peers that failed it, has
each of its shards asked directly that step; later steps group the workers of then.

Everything else of a run (clipping, the optimiser, readings, divergence handling,
callbacks, checkpoints) is the training loop's (``xpnn.training.loop``): this module
knows nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

from xpnn.backends import Array, to_numpy
from xpnn.errors import XpnnTypeError, XpnnValueError

WORKER_WAIT = 60.0
"""Seconds a shard whose worker stopped answering waits for a running worker."""


Answer = tuple[float, dict[str, Any], int]
"""A shard's or a group's mean loss, its gradients (host arrays) and its rows."""


def host_of(address: str) -> str:
    """The host of a worker's address (``tcp://10.0.0.5:40123``: ``10.0.0.5``)."""
    from distributed.comm import get_address_host

    return get_address_host(address)


def host_groups(workers: list[str]) -> list[list[int]] | None:
    """The shards (indices of ``workers``) of each host, in shard order, the groups in
    order of their first shard; None where every worker is on one host."""
    groups: dict[str, list[int]] = {}
    for s, address in enumerate(workers):
        groups.setdefault(host_of(address), []).append(s)
    return list(groups.values()) if len(groups) > 1 else None


def shard_bounds(batch_size: int, shards: int) -> list[tuple[int, int]]:
    """The rows ``[lo, hi)`` of each of ``shards`` shards of a batch: as even as can be,
    the larger shards last."""
    return [(s * batch_size // shards, (s + 1) * batch_size // shards) for s in range(shards)]


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
    reduce : str, optional
        Deprecated and ignored (with a ``DeprecationWarning``): the shards' gradients are
        always summed on the client, in shard order.

    Raises
    ------
    XpnnTypeError
        ``client`` is not a ``distributed.Client``.
    XpnnValueError
        The client is closed or its cluster has no workers; a dask model; a batch smaller
        than the number of workers.
    """

    def __init__(
        self, client: Any, model: Any, stream: Any, truncate: int | None, reduce: Any = None
    ) -> None:
        if reduce is not None:
            warnings.warn(
                f"Gradients(reduce={reduce!r}) is deprecated and ignored: each worker is "
                "asked directly and the client sums the shards in shard order",
                DeprecationWarning,
                stacklevel=2,
            )
        self.client = check_client(client)
        if model.backend == "dask":
            msg = (
                'parallel training runs each worker\'s rows on its own backend; use backend="numpy"'
            )
            raise XpnnValueError(msg, argument="parallel")
        threads = running_workers(self.client)
        if stream.batch_size < len(threads):
            msg = (
                f"batch_size={stream.batch_size} is smaller than the number of workers "
                f"({len(threads)}): every worker needs a row"
            )
            raise XpnnValueError(msg, argument="batch_size")
        from xpnn.parallel import session

        self.session = session
        self.model = model
        self.workers = sorted(threads)
        # the shards of each host where there are several; None: each worker asked directly
        self.groups = host_groups(self.workers)
        self.bounds = shard_bounds(stream.batch_size, len(self.workers))
        # a shard's parts (one a thread of its worker) are fixed for the run, so that a
        # shard redone on another worker sums the same parts
        self.cuts = [
            [(lo + a, lo + b) for a, b in shard_bounds(hi - lo, min(threads[w], hi - lo))]
            for w, (lo, hi) in zip(self.workers, self.bounds, strict=True)
        ]
        self.shard = session.Shard(model, stream, truncate)
        self.id = f"xpnn-{uuid.uuid4().hex}"
        self.opened: set[str] = set()
        self.client.register_plugin(session.SessionPlugin(), name=session.PLUGIN)
        try:
            self.client.sync(self._open_all)
        except BaseException:  # a source that never was: its sessions closed, not left
            self.close()
            raise

    def __call__(self, params: Mapping[str, Array], i: int) -> tuple[float, dict[str, Array]]:
        """Iteration ``i``'s batch loss and gradients (arrays of the model): every
        shard's (or every host's group's) asked at once, summed in order, each weighted
        by its share of the rows."""
        host = {k: to_numpy(v) for k, v in params.items()}
        results = self.client.sync(self._step, host, i)
        parts = [(loss, grads) for loss, grads, _rows in results]
        value, total = self.session.weighted_sum(parts, [rows for _l, _g, rows in results])
        return value, {k: self.model.asarray(g, name=k) for k, g in total.items()}

    async def _ask(self, address: str, **message: Any) -> Any:
        return await getattr(self.client.rpc(address), self.session.HANDLER)(
            session=self.id, **message
        )

    async def _open(self, address: str) -> None:
        if address not in self.opened:
            await self._ask(address, action="open", shard=self.session.to_serialize(self.shard))
            self.opened.add(address)

    async def _open_all(self) -> None:
        async def open_(_s: int, address: str) -> bool:
            await self._open(address)
            return True

        await asyncio.gather(*(self._shard(s, open_) for s in range(len(self.workers))))

    async def _step(self, host: dict[str, Any], i: int) -> list[Answer]:
        """Every shard's answer (or every group's), in shard order (group order)."""
        params = self.session.to_serialize(host)
        workers = list(self.workers)
        if self.groups is None:
            shards = range(len(workers))
            results = await asyncio.gather(*(self._direct(s, params, i) for s in shards))
        else:
            parts = await asyncio.gather(*(self._group(g, params, i) for g in self.groups))
            results = [answer for part in parts for answer in part]
        if self.workers != workers:  # a worker was replaced: group the workers of now
            self.groups = host_groups(self.workers)
        return results

    async def _direct(self, s: int, params: Any, i: int) -> Answer:
        """Shard ``s``'s answer, asked of its worker (or of a running one, ``_shard``)."""

        async def ask(s: int, address: str) -> Answer | None:
            await self._open(address)
            answer = await self._ask(address, action="step", params=params, i=i, cuts=self.cuts[s])
            if answer is None:  # a worker restarted at the same address: open it again
                self.opened.discard(address)
                return None
            lo, hi = self.bounds[s]
            return answer["loss"], answer["grads"], hi - lo

        return await self._shard(s, ask)

    async def _group(self, shards: list[int], params: Any, i: int) -> list[Answer]:
        """The group's one answer, asked of its leader (its first shard's worker), which
        asks the group's other workers itself (their sessions opened here first); where
        the leader cannot be reached, has no session or names peers that failed it,
        each of the group's shards' answers, asked directly (``_direct``)."""
        members = [self.workers[s] for s in shards]
        group = [(a, self.cuts[s]) for a, s in zip(members, shards, strict=True)]
        try:
            await asyncio.gather(*(self._open(a) for a in dict.fromkeys(members)))
            answer = await self._ask(members[0], action="group", params=params, i=i, group=group)
        except OSError:  # the leader (or a peer, opening) is gone: each shard asked directly
            answer = None
        if answer is None or "lost" in answer:
            return await asyncio.gather(*(self._direct(s, params, i) for s in shards))
        return [(answer["loss"], answer["grads"], answer["rows"])]

    async def _shard(self, s: int, ask: Any) -> Any:
        """``ask(s, address)`` of shard ``s``'s worker until it answers (not None); a
        worker that cannot be reached hands the shard to a running worker, for good."""
        while True:
            address = self.workers[s]
            try:
                answer = await ask(s, address)
            except OSError:  # the connection failed or was lost: dask's CommClosedError too
                self.opened.discard(address)
                self.workers[s] = await self._survivor(s, address)
                continue
            if answer is not None:
                return answer

    async def _survivor(self, s: int, dead: str) -> str:
        """A running worker other than ``dead`` for shard ``s`` (waiting up to
        ``WORKER_WAIT`` seconds for one)."""
        deadline = time.monotonic() + WORKER_WAIT
        while True:
            info = await self.client.scheduler.identity(n_workers=-1)
            alive = sorted(set(info.get("workers", {})) - {dead})
            if alive:
                return alive[s % len(alive)]
            if time.monotonic() > deadline:
                msg = (
                    f"parallel: worker {dead} stopped answering and no other worker "
                    f"joined within {WORKER_WAIT:g} s"
                )
                raise XpnnValueError(msg, argument="parallel")
            await asyncio.sleep(0.1)

    def close(self) -> None:
        """Drop the workers' sessions (the model and the stream); a worker that is gone
        is left alone."""
        if self.client.status == "running":
            self.client.sync(self._close_all)

    async def _close_all(self) -> None:
        async def close(address: str) -> None:
            with contextlib.suppress(OSError):
                await self._ask(address, action="close")

        await asyncio.gather(*(close(a) for a in sorted(self.opened)))
        self.opened.clear()


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


def running_workers(client: Any) -> dict[str, int]:
    """The addresses of ``client``'s workers (all of them, not dask's first 5) and each
    one's number of threads.

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
    workers = {w: about.get("nthreads", 1) for w, about in info.get("workers", {}).items()}
    if not workers:
        msg = (
            "parallel: the dask cluster has no workers (or was closed); start workers, or "
            "connect a client to a running cluster"
        )
        raise XpnnValueError(msg, argument="parallel")
    return workers
