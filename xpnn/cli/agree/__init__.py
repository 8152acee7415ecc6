"""``xpnn agree``: the same seeded training runs on every usable backend, compared with
NumPy.

Each run trains a model from the same seed on the same batches with ``xpnn.training.loop.train``
(``log_every=1``, so the loss of every step is recorded) and keeps the final parameters.
A backend's float64 runs are compared with NumPy's float64 runs and its float32 runs
with NumPy's float32 runs. For an array ``x`` against its reference ``ref``::

    abs = max|x - ref|        rel = max|x - ref| / max|ref|

with the whole loss trajectory taken as one array, and for the parameters the largest
``abs`` and ``rel`` over the parameter arrays (each scaled by its own ``max|ref|``). A row
passes when both ``rel`` are within the tolerance of its dtype (``TOLERANCES``).

The modules, by job: ``runs`` (the registry of seeded runs and their execution),
``compare`` (the error metric and the rows), ``targets`` (which backend and device pairs
to compare), ``diagnostics`` (why a row may miss), ``report`` (the table and JSON) and
``command`` (the options and the driver). This package is a driver, not model code: it
may use NumPy on the host.
"""

from xpnn.cli.agree.command import DESCRIPTION, add_arguments, run_agree

__all__ = ["DESCRIPTION", "add_arguments", "run_agree"]
