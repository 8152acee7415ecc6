"""Issue 17: on PyTorch, should ``xpnn.backends.scan`` run its time loop as a Python loop
(what ``torch.compile`` unrolls) or as PyTorch's scan operator
(``torch._higher_order_ops.scan``, a prototype)? Both under ``torch.compile``, side by
side in one run.

The loop is the simple RNN's forward, ``h_t = tanh(ux_t + h_{t-1} @ W)`` from ``h = 0``
over ``ux`` ``(T, B, H)``, returning every ``h_t`` stacked ``(T, B, H)``; float64, one
thread. For each length ``T`` and batch ``B`` it prints the first call (trace and
compile) and the median time of a call of each form, and the largest difference between
their outputs (they compute the same thing). The load average is printed with the
figures. ``scan operator`` is also compiled with ``backend="aot_eager"`` (traced, no
code generated), so that a form Inductor cannot compile still has a time. A compile that
fails is a row saying how. Speed is only measured here; no test asserts on it.

    python benchmarks/torch_scan.py [--lengths 8,64] [--batches 1,1024] [--hidden 16]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch._higher_order_ops.scan import scan as torch_scan


def python_loop(ux: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The recurrence as a Python loop over ``T`` (unrolled by ``torch.compile``)."""
    h = torch.zeros_like(ux[0])
    hs = []
    for t in range(ux.shape[0]):
        h = torch.tanh(ux[t] + h @ w)
        hs.append(h)
    return torch.stack(hs)


def scan_operator(ux: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The recurrence as one call of PyTorch's scan operator."""

    def step(h: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = torch.tanh(u + h @ w)
        return new, new.clone()  # the output may not alias the carry

    return torch_scan(step, torch.zeros_like(ux[0]), ux)[1]


FORMS = (
    ("python loop", python_loop, "inductor"),
    ("scan operator", scan_operator, "inductor"),
    ("scan operator", scan_operator, "aot_eager"),
)


def _timed(fn: Callable[[], torch.Tensor], seconds: float) -> tuple[float, float]:
    """``(first call s, median µs of later calls)``; about ``seconds`` of timed calls."""
    began = time.perf_counter()
    fn()
    first = time.perf_counter() - began
    times: list[float] = []
    while sum(times) < seconds or len(times) < 5:
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return first, statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="8,64", help="sequence lengths T")
    parser.add_argument("--batches", default="1,1024", help="batch sizes B")
    parser.add_argument("--hidden", type=int, default=16, help="hidden size H")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed calls per case")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} CPUs")
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| T | B | form | first call (s) | µs a call | max abs difference |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    gen = torch.Generator().manual_seed(0)
    for steps in map(int, args.lengths.split(",")):
        for batch in map(int, args.batches.split(",")):
            ux = torch.randn(steps, batch, args.hidden, generator=gen, dtype=torch.float64)
            w = 0.3 * torch.randn(args.hidden, args.hidden, generator=gen, dtype=torch.float64)
            eager = python_loop(ux, w)
            for name, form, backend in FORMS:
                torch._dynamo.reset()  # each form compiles from nothing
                compiled = torch.compile(form, backend=backend)
                row = f"| {steps} | {batch} | {name} ({backend}) |"
                try:
                    first, us = _timed(functools.partial(compiled, ux, w), args.seconds)
                except Exception as exc:  # a failed compile is a result here
                    reason = str(exc).strip().splitlines()[0][:100]
                    print(f"{row} fails: {type(exc).__name__}: {reason} | — | — |", flush=True)
                    continue
                diff = (compiled(ux, w) - eager).abs().max().item()
                print(f"{row} {first:.1f} | {us:.1f} | {diff:.1e} |", flush=True)
    print()
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
