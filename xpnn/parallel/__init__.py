"""Data parallelism on dask.distributed: the cluster (``cluster.connect``) that
``xpnn sweep`` and parallel training run on, and the gradient source of data-parallel
training (``Gradients``; ``xpnn.train(..., parallel=client)`` builds it)."""

from xpnn.parallel.gradients import Gradients

__all__ = ["Gradients"]
