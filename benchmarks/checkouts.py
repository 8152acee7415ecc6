"""The eager NumPy step at batch 1 in several checkouts of xpnn, side by side.

Each round trains notebook 3_1's RNN (2-16-1, binary addition, SGD, batch 1, eager
NumPy, one BLAS thread) for ``--iters`` iterations in every checkout given, one process
per checkout (``PYTHONPATH`` set to it), the checkouts in turn; a process keeps the best
of 3 runs after a warm-up. It prints each round with the load average, then each
checkout's median and minimum µs per iteration and its ratio to the first checkout's
median. Older checkouts that do not export ``xpnn.train`` are run through
``xpnn.training.train``. Speed is only measured here; no test asserts on it.

    git worktree add /tmp/before REV
    python benchmarks/checkouts.py /tmp/before . [--rounds 9] [--iters 4000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys, time
import xpnn
from xpnn import datasets
train = getattr(xpnn, "train", None)
if train is None:  # a checkout from before xpnn.train was exported
    from xpnn.training.train import train
iters = int(sys.argv[1])
stream = datasets.BinaryAdditionStream(1, bits=8, seed=0)
train(xpnn.RNN(2, 16, 1, seed=0), xpnn.SGD(lr=0.1), stream, iters=300, log_every=10**6,
      compile="off")
best = float("inf")
for _ in range(3):
    net = xpnn.RNN(2, 16, 1, seed=0)
    began = time.perf_counter()
    train(net, xpnn.SGD(lr=0.1), stream, iters=iters, log_every=10**6, compile="off")
    best = min(best, (time.perf_counter() - began) / iters * 1e6)
print(best)
"""


def time_checkout(checkout: Path, iters: int) -> float:
    """µs per iteration, the best of 3 runs, in a process of ``checkout``'s xpnn."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(checkout)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(iters)],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="checkout folders")
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--iters", type=int, default=4000, help="iterations a run")
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in args.checkouts]
    times: dict[Path, list[float]] = {c: [] for c in checkouts}
    for r in range(args.rounds):
        for c in checkouts:
            times[c].append(time_checkout(c, args.iters))
        row = "  ".join(f"{c.name}: {times[c][-1]:.1f}" for c in checkouts)
        print(f"round {r}: {row} (load {os.getloadavg()[0]:.2f})", flush=True)
    first = statistics.median(times[checkouts[0]])
    for c in checkouts:
        median = statistics.median(times[c])
        print(
            f"{c}: median {median:.1f} µs an iteration, min {min(times[c]):.1f}, "
            f"{median / first:.3f}x the first"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
