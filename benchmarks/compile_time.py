"""How long ``jax.jit`` takes to compile one RNN training step, by sequence
length ``T``, now that the time loop is one ``lax.scan`` (``xpnn.backends.scan``).

For each case it builds the step with ``make_step(..., compile="on")``, times
``jax.jit(step.fn).lower(...)`` and ``.compile()`` apart, runs the compiled step once and
the eager step once, and prints the largest parameter difference (float64). The load
average is printed beside every figure. Speed is only measured here; no test asserts on it.

    python benchmarks/compile_time.py                 # binary addition and adding problem
    python benchmarks/compile_time.py --lengths 8,64  # other lengths
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import xpnn
from xpnn import datasets


def _case(cell: str, steps: int, truncate: int | None) -> tuple[object, object, object]:
    """The model and one batch of 8 sequences of ``steps`` time steps: the binary-addition
    RNN shape (2-16-1, many-to-many) for ``rnn``, the adding problem's (many-to-one,
    identity output) for the gated cells."""
    if cell == "rnn":
        net = xpnn.RNN(2, 16, 1, seed=0, backend="jax", dtype="float64")
        rng = np.random.default_rng(0)
        xs = rng.integers(0, 2, size=(steps, 8, 2)).astype(np.float64)
        ds = rng.integers(0, 2, size=(steps, 8, 1)).astype(np.float64)
    else:
        net = xpnn.RNN(
            2, 16, 1, cell=cell, output="identity", many_to_one=True, seed=0, backend="jax"
        )
        xs, ds = datasets.adding_problem(8, steps, seed=0)
    return net, net.asarray(xs), net.asarray(ds)


def main() -> None:
    import jax

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="8,64,200", help="sequence lengths T")
    parser.add_argument("--cells", default="rnn,lstm", help="cells (rnn, lstm, gru)")
    parser.add_argument("--truncate", type=int, default=None, help="truncated BPTT block")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| cell | T | trace + lower (s) | compile (s) | total (s) | max abs jit - eager | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cell in args.cells.split(","):
        for steps in map(int, args.lengths.split(",")):
            net, xs, ds = _case(cell, steps, args.truncate)
            step = xpnn.make_step(net, xpnn.SGD(0.1), truncate=args.truncate, compile="on")
            began = time.perf_counter()
            lowered = jax.jit(step.fn).lower(net.params, {}, xs, ds)
            lowered_at = time.perf_counter()
            compiled = lowered.compile()
            done = time.perf_counter()
            params, _state, _loss = compiled(net.params, {}, xs, ds)
            eager = xpnn.make_step(net, xpnn.SGD(0.1), truncate=args.truncate, compile="off")
            reference, _state, _loss = eager(net.params, {}, xs, ds)
            error = max(
                float(np.max(np.abs(xpnn.to_numpy(params[k]) - xpnn.to_numpy(reference[k]))))
                for k in params
            )
            print(
                f"| {cell} | {steps} | {lowered_at - began:.2f} | {done - lowered_at:.2f} | "
                f"{done - began:.2f} | {error:.1e} | {os.getloadavg()[0]:.2f} |"
            )


if __name__ == "__main__":
    main()
