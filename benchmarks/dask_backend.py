"""Is the dask backend faster than NumPy in one process on large batches?

One training step (forward, backward, SGD update, the loss read back to the host) of

* the course's binary-addition RNN (8 bits, 2-16-1, sigmoid, full BPTT) at batch 16384
  and 65536 (chunks of ``backend.default_chunk_rows``: 16384 rows);
* the regression MLP (2-10-1, ReLU, identity output) on one batch of 1,000,000 rows
  (chunks of 16130 rows: 62 pieces);

on ``numpy`` (one process), on ``dask`` with its local threaded scheduler (one thread a
core), and on ``dask`` through a ``dask.distributed`` LocalCluster of two single-threaded
worker processes (127.0.0.1 only, stopped at the end). The batch is made once and, on
dask, persisted (on the workers) before timing, as ``train`` does; each step ends in
``float(loss)``, so every timed step has finished. BLAS runs one thread a process
(``--threads``), so the cores are shared out by dask, not by BLAS.

The table gives the median milliseconds a step over ``--repeats`` timed steps after one
warm-up step, and the speed-up over NumPy. Speed is only measured here; no test asserts
on it. Run ``python benchmarks/dask_backend.py`` (``--help``), or ``nox -s bench``.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> str:
    """BLAS thread count, set before NumPy is imported."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return "1"


for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads_from_argv())

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from xpnn import datasets  # noqa: E402
from xpnn.backends import persist  # noqa: E402
from xpnn.course.networks import addition_network, regression_network  # noqa: E402
from xpnn.optim import SGD  # noqa: E402
from xpnn.parallel.cluster import connect  # noqa: E402
from xpnn.training.step import make_step  # noqa: E402

CASES = ("rnn batch 16384", "rnn batch 65536", "mlp 1,000,000 rows")


def _problem(case: str, backend: str) -> tuple[Any, Any, Any]:
    """The model, input and target of ``case`` on ``backend`` (persisted on dask)."""
    if case.startswith("rnn"):
        batch = int(case.split()[-1])
        net = addition_network(backend=backend, seed=0)
        xs, ds = datasets.binary_addition(batch, bits=8, seed=0)
    else:
        net = regression_network(backend=backend, seed=0)
        xs, ds = datasets.linear(1_000_000, seed=0)
    x, d = persist(net.asarray(xs, name="x"), net.asarray(ds, name="d"))
    return net, x, d


def _time_steps(case: str, backend: str, repeats: int) -> float:
    """Median seconds of one step of ``case`` on ``backend``."""
    net, x, d = _problem(case, backend)
    opt = SGD(0.1)
    step = make_step(net, opt, compile="off")
    params, state = net.params, opt.init(net.params)
    times = []
    for i in range(repeats + 1):
        began = time.perf_counter()
        params, state, loss = step(params, state, x, d)
        float(loss)
        if i:  # the first step warms caches up
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def _measure(label: str, backend: str, repeats: int, rows: dict[str, dict[str, float]]) -> None:
    for case in CASES:
        rows[case][label] = _time_steps(case, backend, repeats)
        print(f"  {label:<26} {case:<20} {1000 * rows[case][label]:9.1f} ms/step", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per case")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads a process")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    args = parser.parse_args(argv)

    import dask

    print(
        f"python {platform.python_version()}, dask {dask.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start, "
        f"BLAS threads {args.threads}"
    )
    rows: dict[str, dict[str, float]] = {case: {} for case in CASES}
    labels = ["numpy", "dask threads", f"dask {args.workers}-worker cluster"]
    _measure(labels[0], "numpy", args.repeats, rows)
    _measure(labels[1], "dask", args.repeats, rows)
    with connect(None, args.workers):  # single-threaded worker processes, 127.0.0.1
        _measure(labels[2], "dask", args.repeats, rows)
    print(f"load average {os.getloadavg()[0]:.2f} at the end\n")
    _table(rows, labels)


def _table(rows: dict[str, dict[str, float]], labels: list[str]) -> None:
    head = ["case", *(f"{label} ms" for label in labels), *(f"{lb} / numpy" for lb in labels[1:])]
    lines = [head]
    for case in CASES:
        ms = [f"{1000 * rows[case][label]:.1f}" for label in labels]
        ratios = [f"{rows[case]['numpy'] / rows[case][label]:.2f}x" for label in labels[1:]]
        lines.append([case, *ms, *ratios])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    print(
        "\n(x / numpy: how many times faster than NumPy in one process; target >= 1.5x at "
        "RNN batch 65536)"
    )


if __name__ == "__main__":
    main()
