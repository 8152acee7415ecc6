"""Dask: lazy arrays chunked along the batch axis.

Data is chunked along the batch axis (``chunk_batch``), parameters stay one small chunk,
and the work runs on dask's local threaded scheduler, or on a ``dask.distributed`` client
when one is active (``dask_scheduler`` names which). Each step ends in ``persist``, so the
next step's task graph starts from concrete arrays.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat

from xpnn.backends.base import Array, ArrayNamespace, Backend
from xpnn.errors import XpnnValueError, shown

DASK_CHUNK_ROWS = 16384
"""The most batch rows in one dask chunk by default: a smaller batch is one chunk (dask's
cost per task would outweigh the arithmetic), a larger one splits into equal chunks."""


class DaskBackend(Backend):
    name = "dask"
    module = "dask.array"
    extra = "dask"
    install_hint = 'pip install "xpnn[dask]"'
    lazy = True

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        return importlib.import_module("array_api_compat.dask.array")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_dask_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return is_dask(x)

    def place_batch(self, x: Array, axis: int, rows: int | None = None) -> Array:
        return chunk_batch(x, axis, rows)

    def step_boundary(self, fn: Callable) -> Callable:
        def step(*args: Any) -> Any:
            return self.persist(fn(*args))

        return step

    def persist(self, trees: tuple[Any, ...]) -> tuple[Any, ...]:
        import dask

        return dask.persist(*trees)

    def scheduler(self) -> str | None:
        return dask_scheduler()


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask array (without importing dask)."""
    return array_api_compat.is_dask_array(x)


def default_chunk_rows(batch: int) -> int:
    """Rows per chunk for a batch of ``batch`` rows: ``batch`` cut into the fewest equal
    pieces of at most ``DASK_CHUNK_ROWS`` (65536 -> 16384, 20000 -> 10000, 100 -> 100)."""
    pieces = -(-batch // DASK_CHUNK_ROWS)
    return -(-batch // pieces)


def chunk_batch(x: Array, axis: int, rows: int | None = None) -> Array:
    """A dask array ``x`` rechunked into ``rows`` rows per chunk along ``axis`` (default
    ``default_chunk_rows``) and one chunk along every other axis; any other array as is.

    Raises
    ------
    XpnnValueError
        ``rows`` is not a positive integer.
    """
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        msg = f"chunks must be a positive integer (rows per chunk), got {shown(rows)}"
        raise XpnnValueError(msg, argument="chunks")
    if not is_dask(x) or x.ndim == 0:
        return x
    rows = default_chunk_rows(max(x.shape[axis], 1)) if rows is None else rows
    return x.rechunk({i: (rows if i == axis else -1) for i in range(x.ndim)})


def dask_scheduler() -> str:
    """Where dask work runs now: the active ``dask.distributed`` client's scheduler
    address and worker count, or dask's local threaded scheduler."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # ValueError: no client is active
        return "local threads"
    workers = len(client.scheduler_info().get("workers", {}))
    return f"distributed {client.scheduler.address} ({workers} workers)"
