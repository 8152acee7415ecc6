"""The dask cluster that ``xpnn sweep`` and parallel training run on: a local one on
127.0.0.1, or an existing scheduler checked before use.

An address is probed with a plain socket before dask is given it (``probe_scheduler``):
dask's own connect waits forever on a listener that accepts and never answers, and reads
an HTTP reply as the length of a 3 EiB message. Workers are then asked for the xpnn they
import (``check_workers``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

from xpnn.backends import install_hint
from xpnn.errors import XpnnTypeError, XpnnValueError, check_integer, shown

CONNECT_TIMEOUT = 10
"""Seconds ``--scheduler ADDRESS`` waits for the scheduler before giving up."""

HANDSHAKE_MAX = 1 << 20  # a dask handshake is a few hundred bytes; more is not dask


def check_dask(what: str = "xpnn sweep") -> None:
    """Raise XpnnValueError with the extra to install when dask.distributed is missing."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        msg = f"{what} needs dask.distributed ({exc}); install it with: {install_hint('dask')}"
        raise XpnnValueError(msg) from None


MMAP_THRESHOLD = 32 << 20
"""glibc's largest dynamic mmap threshold on 64-bit: below it, freed memory is reused."""


def worker_environment(threads_per_worker: int) -> dict[str, str]:
    """What a local worker process gets before it starts (dask's
    ``distributed.nanny.pre-spawn-environ``): one BLAS/OpenMP thread per worker thread,
    and malloc thresholds that keep batch-sized arrays in the heap.

    dask sets ``MALLOC_TRIM_THRESHOLD_=65536``; setting any glibc threshold stops glibc
    from raising its mmap threshold (128 KiB) as it sees large frees, so every array
    past 128 KiB (a 8192 x 16 float64 activation is 1 MiB) is mapped, faulted in page by
    page and unmapped on every step. Both thresholds are set where glibc's dynamic rule
    ends up (an unset variable would not do: see ``local_cluster``):
    ``MALLOC_MMAP_THRESHOLD_`` its 32 MiB maximum, ``MALLOC_TRIM_THRESHOLD_`` twice that.
    """
    threads = str(threads_per_worker)
    return {
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(2 * MMAP_THRESHOLD),
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }


@contextlib.contextmanager
def connect(
    scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Any]:
    """A ``distributed.Client``, closed on exit: on the scheduler at ``scheduler``
    (probed, then connected, within ``CONNECT_TIMEOUT`` seconds), or on a local cluster of
    ``workers`` worker processes (default: one a core) of ``threads_per_worker`` threads
    each, listening on 127.0.0.1 only and stopped on exit. Either way every worker must
    import the client's xpnn version (``check_workers``).

    Raises
    ------
    XpnnValueError
        Both or a bad ``scheduler``/``workers``/``threads_per_worker``; the scheduler
        cannot be reached, does not answer, or is not a dask scheduler; a worker lacks
        xpnn or has another version.
    """
    check_dask("a dask cluster")
    from distributed import Client

    threads_per_worker = check_integer(threads_per_worker, "threads_per_worker")
    if scheduler is not None:
        if workers is not None:
            msg = (
                f"give workers or scheduler, not both (workers={workers}, scheduler={scheduler!r})"
            )
            raise XpnnValueError(msg)
        began = time.monotonic()
        probe_scheduler(scheduler, CONNECT_TIMEOUT)
        left = max(1.0, CONNECT_TIMEOUT - (time.monotonic() - began))
        try:
            client = Client(scheduler, timeout=left)
        except (OSError, TimeoutError, ValueError) as exc:
            msg = (
                f"cannot reach the dask scheduler at {_short(scheduler)} within "
                f"{CONNECT_TIMEOUT} s ({type(exc).__name__})"
            )
            raise XpnnValueError(msg) from None
        with client:
            check_workers(client)
            yield client
        return
    n = (os.cpu_count() or 1) if workers is None else check_integer(workers, "workers")
    local = local_cluster(n, threads_per_worker, worker_environment(threads_per_worker))
    with local, Client(local) as client:
        check_workers(client)
        yield client


def local_cluster(workers: int, threads_per_worker: int, environ: dict[str, str]) -> Any:
    """A ``LocalCluster`` of ``workers`` processes of ``threads_per_worker`` threads on
    127.0.0.1, whose workers start with the variables ``environ``, restarted ones too.

    The nanny takes a variable from this process's environment before its own
    configuration, and writes what it sets into this environment: both are put right
    for the time the cluster is made (its restarts reuse what the nanny read then, and,
    as dask's own do, write it into this environment again).
    """
    import dask
    from distributed import LocalCluster

    config = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    saved = {k: os.environ.get(k) for k in environ}
    try:
        os.environ.update(environ)
        with dask.config.set(config):
            return LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.ERROR,  # not the cancelled-task warnings of a Ctrl-C
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def probe_scheduler(address: Any, timeout: float) -> None:
    """Check that ``address`` (``tcp://HOST:PORT`` or ``HOST:PORT``) answers as a dask
    scheduler does, within ``timeout`` seconds: it accepts a connection and first sends a
    handshake, a length-prefixed message of a few frames. Other schemes (``tls://``, ...)
    are left to dask.

    Raises
    ------
    XpnnValueError
        Not an address; nothing accepts within ``timeout``; the listener accepts but says
        nothing within ``timeout``; or what it says is not a dask handshake.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    if not isinstance(address, str):
        msg = f"scheduler must be an address such as tcp://HOST:8786, got {shown(address)}"
        raise XpnnTypeError(msg)
    try:
        scheme, location = parse_address(address, strict=False)
        if scheme != "tcp":
            return
        host, port = parse_host_port(location)
    except ValueError as exc:
        msg = f"scheduler {_short(address)} is not an address such as tcp://HOST:8786 ({exc})"
        raise XpnnValueError(msg) from None
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        msg = (
            f"cannot reach the dask scheduler at {_short(address)} within {timeout:g} s "
            f"({type(exc).__name__})"
        )
        raise XpnnValueError(msg) from None
    with sock:
        try:
            header = _read(sock, 8, deadline)
            (size,) = struct.unpack("<Q", header)
            body = _read(sock, size, deadline) if 16 <= size <= HANDSHAKE_MAX else b""
        except TimeoutError:
            msg = (
                f"the scheduler at {_short(address)} accepted a connection but sent nothing "
                f"a dask scheduler sends within {timeout:g} s; is it a dask scheduler?"
            )
            raise XpnnValueError(msg) from None
        except OSError as exc:
            msg = f"the scheduler at {_short(address)} closed the connection ({exc})"
            raise XpnnValueError(msg) from None
    if not _is_frames(body):
        msg = (
            f"{_short(address)} answered, but not as a dask scheduler does (it began with "
            f"{shown(header)}); check the address and port"
        )
        raise XpnnValueError(msg)


def _read(sock: socket.socket, n: int, deadline: float) -> bytes:
    """Exactly ``n`` bytes from ``sock`` before ``deadline`` (``time.monotonic``); raises
    TimeoutError when they do not come in time, OSError when the peer closes first."""
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            raise TimeoutError from None
        if not chunk:
            msg = "closed before its handshake ended"
            raise OSError(msg)
        data += chunk
    return data


def _is_frames(body: bytes) -> bool:
    """Whether ``body`` is dask's frame layout: a count ``k``, ``k`` lengths, then
    exactly that many bytes."""
    if len(body) < 8:
        return False
    (k,) = struct.unpack_from("<Q", body)
    if not 1 <= k <= 64 or len(body) < 8 * (k + 1):
        return False
    lengths = struct.unpack_from(f"<{k}Q", body, 8)
    return 8 * (k + 1) + sum(lengths) == len(body)


def check_workers(client: Any) -> None:
    """Every worker must import xpnn, of the client's version: the worker is handed the
    ``xpnn`` module by reference, so it imports its own, and reports its ``__version__``.

    Raises
    ------
    XpnnValueError
        Naming the first worker that lacks xpnn or has another version, and both versions.
    """
    import xpnn._version as ours

    answers = client.run(getattr, ours, "__version__", on_error="return")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            msg = (
                f"worker {worker} cannot import xpnn ({type(answer).__name__}: "
                f"{shown(str(answer))}); the client has xpnn {ours.__version__}: install "
                "the same version on every worker"
            )
            raise XpnnValueError(msg)
        if answer != ours.__version__:
            msg = (
                f"worker {worker} has xpnn {shown(answer)} but the client has xpnn "
                f"{ours.__version__}: install the same version on every worker"
            )
            raise XpnnValueError(msg)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")
