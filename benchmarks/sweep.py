"""How many sweep runs a minute, on 1 and on 2 worker processes, and what the scheduler
costs a task.

The sweep is ``xpnn sweep binary-addition --grid activation=sigmoid,tanh,relu --seeds N
--iters ITERS`` (defaults: 4 seeds, 1000 iterations: 12 runs), run through
``xpnn.cli.sweep.tasks.execute`` (the command's own code) on a fresh LocalCluster of single-threaded
worker processes (127.0.0.1 only). It reports

* throughput: runs a minute, from the wall time of ``execute`` (the cluster is started
  before the clock runs), with 1 and with 2 workers, interleaved over ``--repeats``
  rounds (the median kept), and their ratio, the load average beside every figure;
* overhead a task: the workers first import xpnn (once a worker, not timed); on 1
  worker the runs go one after another, so ``(wall - sum of the runs' own seconds) /
  runs`` is what the scheduler, the transfers and the results file add to each run; as
  a share of the median run;
* the round trip of an empty task: ``--empty`` no-op tasks submitted at once on 2 workers,
  wall time / tasks (the scheduler's floor, whatever the run).

Speed is only measured here; no test asserts on it. BLAS runs one thread a process.
Run ``python benchmarks/sweep.py`` (``--help``; ``--quick`` for a smoke run), or ``nox -s
bench``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from xpnn.cli.sweep.grid import Sweep, build_sweep, identity  # noqa: E402
from xpnn.cli.sweep.results import ResultsFile  # noqa: E402
from xpnn.cli.sweep.tasks import execute  # noqa: E402
from xpnn.parallel.cluster import connect  # noqa: E402


def _noop(i: int) -> int:
    return i


def _warm_up() -> None:
    import xpnn.course.registry  # noqa: F401


def _sweep(seeds: int, iters: int) -> Sweep:
    args = argparse.Namespace(
        run="binary-addition", grid=["activation=sigmoid,tanh,relu"], seeds=seeds
    )
    return build_sweep(args, ["--iters", str(iters)])


def _run(spec: Sweep, workers: int) -> tuple[float, list[float]]:
    """Wall seconds of the whole sweep on ``workers`` workers, and each run's seconds."""
    with (
        tempfile.TemporaryDirectory() as folder,
        connect(None, workers) as client,
        ResultsFile(Path(folder) / "s.jsonl", identity(spec)) as results,
    ):
        client.run(_warm_up)  # imports once a worker, not part of any task's cost
        began = time.perf_counter()
        outcome = execute(spec, results, client, lambda *_: None)
        wall = time.perf_counter() - began
        if outcome.failed:
            raise SystemExit(f"a run failed: {outcome.first_failure}")
        return wall, [row["seconds"] for row in results.rows.values()]


def _empty_tasks(n: int) -> float:
    """Seconds a no-op task, ``n`` of them at once on 2 workers."""
    with connect(None, 2) as client:
        client.gather(client.map(_noop, range(20), pure=False))  # warm the workers up
        began = time.perf_counter()
        client.gather(client.map(_noop, range(n), pure=False))
        return (time.perf_counter() - began) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per configuration")
    parser.add_argument("--iters", type=int, default=1000, help="iterations a run")
    parser.add_argument("--empty", type=int, default=500, help="no-op tasks to time")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.iters, args.empty, args.repeats = 1, 20, 20, 1
    spec = _sweep(args.seeds, args.iters)
    n = len(spec.tasks())
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    print(
        f"sweep: binary-addition, 3 activations x {args.seeds} seeds = {n} runs, "
        f"--iters {args.iters}"
    )
    walls: dict[int, list[float]] = {1: [], 2: []}
    runs: dict[int, list[float]] = {1: [], 2: []}
    loads: dict[int, str] = {}
    for _ in range(args.repeats):  # 1 and 2 workers in turn: the load hits both alike
        for workers in (1, 2):
            wall, times = _run(spec, workers)
            walls[workers].append(wall)
            runs[workers] += times
            loads[workers] = f"{os.getloadavg()[0]:.2f}"
    empty = _empty_tasks(args.empty)
    print(f"load average {os.getloadavg()[0]:.2f} at the end\n")
    wall1, wall2 = statistics.median(walls[1]), statistics.median(walls[2])
    median_run = statistics.median(runs[1])
    overhead = (wall1 - sum(runs[1]) / args.repeats) / n
    rows = [("workers", "wall s", "runs/minute", "median run s", "load")]
    for workers, wall in ((1, wall1), (2, wall2)):
        median = statistics.median(runs[workers])
        rows.append(
            (str(workers), f"{wall:.1f}", f"{60 * n / wall:.1f}", f"{median:.3f}", loads[workers])
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        f"\nthroughput 2 workers / 1 worker: {wall1 / wall2:.2f}x (target >= 1.8x; "
        f"load {os.getloadavg()[0]:.2f})"
    )
    print(
        f"overhead a task on 1 worker: {1000 * overhead:.1f} ms = "
        f"{100 * overhead / median_run:.1f}% of the median run (target <= 5%)"
    )
    print(f"empty task round trip ({args.empty} at once, 2 workers): {1000 * empty:.2f} ms")


if __name__ == "__main__":
    main()
