"""The course's MNIST-sized MLP, 784-100-10 (ReLU, softmax + cross-entropy, SGD), one
training step per iteration on synthetic data, in µs per training sample.

Rows: ``make_step``'s step on NumPy (eager), JAX (``jax.jit``) and PyTorch (eager), and
the same network written with PyTorch autograd (``torch.nn.Linear`` layers). Medians of
interleaved runs, float64; compile time (the first call) is reported apart. Run it with
one BLAS thread, as the other benchmarks::

    OPENBLAS_NUM_THREADS=1 python benchmarks/mlp.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import xpnn
from xpnn.backends import backend_info
from xpnn.optim import SGD
from xpnn.training.step import make_step

SIZES = [784, 100, 10]
LR = 0.1
POOL = 8  # batches drawn once and cycled through


def _data(batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.random((POOL, batch, SIZES[0]))
    labels = rng.integers(0, SIZES[-1], size=(POOL, batch))
    d = np.eye(SIZES[-1])[labels]
    return [(x[i], d[i]) for i in range(POOL)]


def xpnn_case(backend: str, batch: int, compile: str) -> tuple[Callable[[int], None], float]:
    """``iters`` steps of ``make_step``'s step; the seconds of its first call."""
    net = xpnn.MLP(SIZES, hidden="relu", output="softmax", loss="cross_entropy", backend=backend)
    opt = SGD(LR)
    step = make_step(net, opt, compile=compile)
    batches = [(net.asarray(x), net.asarray(d)) for x, d in _data(batch)]
    params, state = net.params, opt.init(net.params)
    began = time.perf_counter()
    params, state, loss = step(params, state, *batches[0])
    float(loss)
    first = time.perf_counter() - began

    def run(iters: int) -> None:
        nonlocal params, state
        loss = None
        for i in range(iters):
            params, state, loss = step(params, state, *batches[i % POOL])
        float(loss)

    return run, first


def torch_case(batch: int) -> tuple[Callable[[int], None], float]:
    """The same network with ``torch.nn`` layers and autograd."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(), torch.nn.Linear(SIZES[1], SIZES[2])
    ).double()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = [(torch.from_numpy(x), torch.from_numpy(d)) for x, d in _data(batch)]

    def run(iters: int) -> None:
        for i in range(iters):
            x, d = batches[i % POOL]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), d)
            loss.backward()
            opt.step()
        float(loss.detach())

    return run, 0.0


def timed(run: Callable[[int], None], seconds: float) -> int:
    """Iterations of ``run`` that take about ``seconds``."""
    iters = 2
    while True:
        began = time.perf_counter()
        run(iters)
        elapsed = time.perf_counter() - began
        if elapsed >= seconds / 4 or iters >= 1 << 16:
            return max(2, round(iters * seconds / max(elapsed, 1e-9)))
        iters *= 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,100,1000", help="comma list of batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each case")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed run")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    usable = {name: backend_info(name).usable for name in ("numpy", "jax", "torch")}
    kinds = [("xpnn on NumPy (eager)", "numpy", "off"), ("xpnn on JAX (jax.jit)", "jax", "on")]
    kinds.append(("xpnn on PyTorch (eager)", "torch", "off"))
    results: dict[tuple[str, int], float] = {}
    firsts: dict[tuple[str, int], float] = {}
    for batch in batches:
        cases = {}
        for label, backend, compile in kinds:
            if usable[backend]:
                cases[label], firsts[label, batch] = xpnn_case(backend, batch, compile)
        if usable["torch"]:
            cases["PyTorch autograd (torch.nn)"], _ = torch_case(batch)
        iters = {label: timed(run, args.seconds) for label, run in cases.items()}
        samples: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.repeats):  # round-robin, so that noise is shared
            for label, run in cases.items():
                began = time.perf_counter()
                run(iters[label])
                samples[label].append((time.perf_counter() - began) / iters[label] / batch)
        for label in cases:
            results[label, batch] = statistics.median(samples[label]) * 1e6
    labels = list(dict.fromkeys(label for label, _ in results))
    print("| implementation | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("| --- | " + " | ".join("---:" for _ in batches) + " |")
    for label in labels:
        cells = [f"{results[label, b]:.2f}" if (label, b) in results else "—" for b in batches]
        print(f"| {label} | " + " | ".join(cells) + " |")
    jit = [f"batch {b}: {firsts[label, b]:.2f} s" for label, b in firsts if "jax" in label]
    if jit:
        print(f"\nfirst call of the jax.jit step (the compile): {', '.join(jit)}")


if __name__ == "__main__":
    main()
