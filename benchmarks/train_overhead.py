"""What ``train()`` costs on top of its step: the binary-addition RNN at batch 1.

Times ``xpnn.train`` continuing one run (successive calls with ``resume_from``, so a
compiled step is compiled once, before timing) against ``make_step``'s step called in
a bare Python loop over batches already on the device, in µs per iteration, median of
``--repeats`` interleaved runs. Run it with one BLAS thread::

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_overhead.py --backends numpy,jax
"""

from __future__ import annotations

import argparse
import statistics
import time

import xpnn
from xpnn import datasets
from xpnn.backends import COMPILERS
from xpnn.optim import SGD
from xpnn.training.loop import train
from xpnn.training.step import make_step


def measure(backend: str, compile: str, iters: int, repeats: int) -> tuple[float, float, bool]:
    """Median µs per iteration of ``train()`` and of the raw step, and whether compiled."""
    net = xpnn.RNN(2, 16, 1, seed=0, backend=backend)
    opt = SGD(0.1)
    stream = datasets.BinaryAdditionStream(1, bits=8, seed=0)
    result = train(net, opt, stream, iters=2, log_every=100, compile=compile)  # the compile

    step = make_step(net, opt, compile="on" if result.stats.compiled else "off")
    xs, ds = stream.batches(0, datasets.CHUNK)
    x_all, d_all = net.asarray(xs), net.asarray(ds)
    batches = [(x_all[:, j : j + 1], d_all[:, j : j + 1]) for j in range(datasets.CHUNK)]
    params, raw_state = net.params, opt.init(net.params)
    params, raw_state, loss = step(params, raw_state, *batches[0])
    float(loss)

    trained, raw = [], []
    for _ in range(repeats):  # interleaved, so that noise is shared
        began = time.perf_counter()
        result = train(
            net, opt, stream, iters=result.step + iters, resume_from=result, compile=compile
        )
        xpnn.to_numpy(net.params["W"])  # sync: the last update has finished
        trained.append((time.perf_counter() - began) / iters * 1e6)

        began = time.perf_counter()
        for i in range(iters):
            params, raw_state, loss = step(params, raw_state, *batches[i % len(batches)])
        float(loss)
        raw.append((time.perf_counter() - began) / iters * 1e6)
    return statistics.median(trained), statistics.median(raw), result.stats.compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,jax", help="comma list (numpy,jax)")
    parser.add_argument("--iters", type=int, default=2000, help="iterations a timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
    args = parser.parse_args()
    print("| backend | step | train() µs/iter | raw step µs/iter | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for backend in args.backends.split(","):
        modes = ("auto", "off") if backend in COMPILERS else ("off",)
        for mode in modes:  # an eager JAX or torch step is slow: time fewer iterations
            iters = args.iters if mode == "auto" or backend not in COMPILERS else args.iters // 20
            trained, raw, compiled = measure(backend, mode, iters, args.repeats)
            kind = "compiled" if compiled else "eager"
            print(f"| {backend} | {kind} | {trained:.1f} | {raw:.1f} | {trained / raw:.2f}x |")


if __name__ == "__main__":
    main()
