"""A sweep's runs on dask.distributed: one task a run (``run_one``, on a worker), each row
appended to the results file as its task finishes."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xpnn.backends import float_errors_ignored
from xpnn.cli.sweep.grid import Sweep, describe, identity, row_key
from xpnn.cli.sweep.results import ResultsFile
from xpnn.course.registry import RUNS
from xpnn.errors import TrainingDiverged


def run_one(settings: Any) -> dict[str, Any]:
    """Run the run of ``settings`` (``RUN`` names it) and return its row: the final loss,
    the notebook's scalar measures, the first reading at which every answer was exact
    (binary addition), or the iteration where it diverged; the run's test curve where it
    records one (``curve``, to the last finite reading); wall time and worker."""
    probe = _ExactProbe(settings.bits) if settings.RUN == "binary-addition" else None
    began = time.perf_counter()
    row: dict[str, Any] = {"final_loss": None, "diverged_at": None, "first_exact": None}
    try:
        with float_errors_ignored():
            extra = {} if probe is None else {"on_reading": probe}
            plan = settings.resolve()  # the registry's runs take a RunPlan
            result = RUNS[settings.RUN].run(plan, echo=None, progress=False, **extra)
    except TrainingDiverged as exc:
        row["diverged_at"] = exc.iteration
        curve = exc.metrics.get("curve")
    else:
        curve = result.metrics.get("curve")
        row["final_loss"] = result.train.history[-1][1]
        row["metrics"] = {
            k: v
            for k, v in result.metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        }
        if probe is not None:
            exact, total = result.metrics["exact"], result.metrics["total"]
            row["first_exact"] = (
                probe.first
                if probe.first is not None
                else (settings.iters if exact == total else None)
            )
    if curve is not None:
        row["curve"] = curve
    row["seconds"] = time.perf_counter() - began
    row["worker"] = _worker_name()
    return row


class _ExactProbe:
    """At each loss reading of a binary-addition run: once the reading's batch is all
    right, count every operand pair; remember the first reading with all of them exact."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.first: int | None = None

    def __call__(self, net: Any, event: Any) -> None:
        from xpnn.backends import to_numpy
        from xpnn.course.networks import addition_accuracy

        if self.first is not None:
            return
        y, d = to_numpy(event.y), to_numpy(event.d)
        if not ((y >= 0.5) == (d >= 0.5)).all():
            return
        exact, total = addition_accuracy(net, self.bits)
        if exact == total:
            self.first = event.iteration


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a dask worker
        return "local"


@dataclass
class Outcome:
    """What a sweep did this time: runs skipped (already in the file), finished, failed
    (with the first failure's message)."""

    skipped: int = 0
    finished: int = 0
    failed: int = 0
    first_failure: str = ""


def execute(
    sweep: Sweep, results: ResultsFile, client: Any, progress: Callable[[Outcome, int], None]
) -> Outcome:
    """Submit every run not yet in ``results``, one task each; append each row as its
    task finishes. A task whose worker dies is rerun by dask elsewhere; a run that raises
    is counted as failed and not written, so the next rerun tries it again."""
    from distributed import as_completed

    outcome = Outcome()
    tag = task_tag(sweep)
    pending = {}  # task key on the cluster -> (config, seed)
    for index, (config, seed) in enumerate(sweep.tasks()):
        if row_key(config, seed) in results.rows:
            outcome.skipped += 1
        else:
            pending[f"{tag}-{index}"] = (config, seed)
    futures = {
        client.submit(run_one, sweep.settings(config, seed), key=key, pure=False): (config, seed)
        for key, (config, seed) in pending.items()
    }
    progress(outcome, len(pending))
    for future in as_completed(futures):
        config, seed = futures.pop(future)
        try:
            row = future.result()
        except Exception as exc:  # the run's own error, or KilledWorker after retries
            outcome.failed += 1
            outcome.first_failure = outcome.first_failure or (
                f"{describe(config)} seed {seed}: {type(exc).__name__}: {exc}"
            )
        else:
            results.append({"config": config, "seed": seed, **row})
            outcome.finished += 1
        progress(outcome, len(pending))
    return outcome


def task_tag(sweep: Sweep) -> str:
    """The prefix of this sweep's task keys on the cluster, ``xpnn-run-<hash>``; task
    ``i`` of ``sweep.tasks()`` is ``<prefix>-i``."""
    digest = hashlib.sha256(json.dumps(identity(sweep), sort_keys=True).encode()).hexdigest()
    return f"xpnn-run-{digest[:12]}"
