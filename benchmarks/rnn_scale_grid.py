"""The scale grid: how fast does one RNN training step run, from batch 1 to 16384,
hidden 16 to 512, 8 and 64 time steps, on every xpnn path beside PyTorch's?

Each cell of the grid (batch ``B`` x hidden ``H`` x sequence length ``T``; input size
2, output size 1) times one training step (forward, full BPTT, a plain SGD update) on
synthetic random data (a fixed seed, a pool of ``POOL`` batches already on the device),
in µs per sequence, for

* ``xpnn-numpy eager``, ``xpnn-torch eager``: ``xpnn.make_step(net, SGD(lr),
  compile="off")`` called in a loop (the raw step, no ``train()``);
* ``xpnn-jax jit``: the same with ``compile="on"`` (``jax.jit``); and, with
  ``--torch-compile``, ``xpnn-torch compile`` (``torch.compile``). The first call (the
  trace and compile) is timed apart and reported in its own table. ``jax.jit`` unrolls
  the time loop, so its compile grows with ``T``: once a compile at some length takes
  longer than ``--compile-budget`` seconds, the other cells of that compiler at that
  length are skipped, and their table cells say so;
* ``torch.nn.RNN``: ``torch.nn.RNN(2, H, nonlinearity="tanh")`` + ``Linear(H, 1)``,
  autograd, ``torch.optim.SGD``;
* ``torch autograd``: the same cell written by hand with torch ops, a Python loop over
  time, ``loss.backward()`` and a manual SGD step under ``no_grad``.

All compute the same function from the same initial weights: xpnn's RNN with a tanh
state and biases, ``u_t = x_t @ W_in + z_{t-1} @ W + b``, ``z_t = tanh(u_t)``, a sigmoid
output at every step ``y_t = sigmoid(z_t @ W_out + b_out)`` and the squared error
``0.5 * sum((y - d)**2) / B`` (``_runners.py``). A cell whose step costs more than
``--max-gflop`` (estimated as ``6 T B H (I + H + O)`` floating-point operations: the
matmuls of the forward pass, twice that for the backward) is skipped and says so.

Timing as in ``_timing.py`` (a warm-up call, calibrated runs of about ``--seconds``,
interleaved round-robin within a cell, medians); one BLAS/OpenMP/XLA thread unless
``--threads`` says otherwise. Speed is only measured here; no test asserts on it.

    python benchmarks/rnn_scale_grid.py [--max-gflop 120] [--backends numpy,jax,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _runners import PoolLoop, TorchAutogradRNN, TorchModuleRNN, XpnnModel
from _timing import Case, machine_line, measure, pin_threads

import xpnn
from xpnn.backends import backend_info
from xpnn.optim import SGD

INPUT, OUTPUT, LR, POOL = 2, 1, 0.01, 2
TORCH_RNN, TORCH_AUTOGRAD = "torch.nn.RNN", "torch autograd"
NET = {"hidden": "tanh", "output": "sigmoid", "loss": "mse", "bias": True, "init": "xavier"}


@dataclass(frozen=True)
class Path:
    """One implementation: its row label, ``--backends`` key, the backend it needs and,
    for xpnn, the ``compile`` mode."""

    label: str
    key: str
    backend: str
    compile: str | None = None

    @property
    def xpnn(self) -> bool:
        return self.compile is not None


PATHS = (
    Path("xpnn-numpy eager", "numpy", "numpy", "off"),
    Path("xpnn-cupy eager", "cupy", "cupy", "off"),
    Path("xpnn-jax jit", "jax", "jax", "on"),
    Path("xpnn-torch eager", "torch", "torch", "off"),
    Path("xpnn-torch compile", "torch-compile", "torch", "on"),
    Path(TORCH_RNN, "nn.RNN", "torch"),
    Path(TORCH_AUTOGRAD, "autograd", "torch"),
)
DEFAULT_BACKENDS = "numpy,jax,torch,nn.RNN,autograd"


def gflop(batch: int, hidden: int, steps: int) -> float:
    """Estimated GFLOP of one training step: forward matmuls ``2 T B H (I + H + O)``,
    three times that with the backward."""
    return 6 * steps * batch * hidden * (INPUT + hidden + OUTPUT) / 1e9


def make_batches(batch: int, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``POOL`` host batches: ``x`` ``(T, B, I)`` standard normal, ``d`` ``(T, B, O)``
    uniform in [0, 1) (targets for a sigmoid output), seed 0."""
    rng = np.random.default_rng(0)
    return [
        (rng.standard_normal((steps, batch, INPUT)), rng.random((steps, batch, OUTPUT)))
        for _ in range(POOL)
    ]


def make_net(hidden: int, backend: str, device: Any, dtype: str) -> xpnn.RNN:
    """The benchmarked network: 2-H-1, tanh state, biases, sigmoid output, squared error,
    Xavier initial weights (seed 0, the same on every backend)."""
    device = None if backend == "numpy" else device
    return xpnn.RNN(INPUT, hidden, OUTPUT, backend=backend, device=device, dtype=dtype, **NET)


def make_runner(
    path: Path, hidden: int, batches: list[tuple[np.ndarray, np.ndarray]], args: argparse.Namespace
) -> PoolLoop:
    """The timed loop of ``path`` for one cell (built here: its first call runs now)."""
    if path.xpnn:
        net = make_net(hidden, path.backend, args.device, args.dtype)
        return PoolLoop(XpnnModel(net, SGD(LR), path.compile), batches)
    init = {k: np.asarray(v) for k, v in make_net(hidden, "numpy", None, "float64").params.items()}
    if path.label == TORCH_RNN:
        return PoolLoop(TorchModuleRNN(init, LR, args.device, args.dtype), batches)
    return PoolLoop(TorchAutogradRNN(init, "tanh", LR, args.device, args.dtype), batches)


@dataclass
class Grid:
    """What a run found: per ``(T, H, label, B)`` a median µs per sequence or the reason
    the cell was not timed, and the compiled paths' first calls in seconds."""

    timed: dict[tuple[int, int, str, int], float | str] = field(default_factory=dict)
    compiles: dict[tuple[int, int, str, int], float] = field(default_factory=dict)
    #: (label, T) -> why that compiler is skipped at that length from now on
    too_slow: dict[tuple[str, int], str] = field(default_factory=dict)


def run_cell(
    grid: Grid, paths: list[Path], steps: int, hidden: int, batch: int, args: argparse.Namespace
) -> None:
    """Build, calibrate and time every path at one cell, interleaved; record the medians."""
    cost = gflop(batch, hidden, steps)
    print(f"\nT {steps}, hidden {hidden}, batch {batch}: {cost:.3g} GFLOP/step", flush=True)
    if cost > args.max_gflop:
        for path in paths:
            grid.timed[steps, hidden, path.label, batch] = (
                f"skipped: over budget ({cost:.3g} GFLOP/step)"
            )
        return
    batches = make_batches(batch, steps)
    cases = []
    for path in paths:
        key = (steps, hidden, path.label, batch)
        if (path.label, steps) in grid.too_slow:
            grid.timed[key] = grid.too_slow[path.label, steps]
            continue
        runner = make_runner(path, hidden, batches, args)
        if path.compile == "on":
            grid.compiles[key] = runner.first_call
            print(f"  {path.label} compiled in {runner.first_call:.1f} s", flush=True)
            if runner.first_call > args.compile_budget:
                grid.too_slow[path.label, steps] = (
                    f"skipped: compile {runner.first_call:.0f} s at T {steps} "
                    f"> --compile-budget {args.compile_budget:g} s"
                )
        cases.append(Case(path.label, batch, runner))
    measure(cases, args.repeats, args.seconds)
    for case in cases:
        grid.timed[steps, hidden, case.name, batch] = case.median


# -- reporting ---------------------------------------------------------------------------


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def print_cell_tables(grid: Grid, paths: list[Path], args: argparse.Namespace) -> None:
    for steps in args.lengths:
        for hidden in args.hidden:
            print(
                f"\n### T {steps}, hidden {hidden}: µs per sequence (median of {args.repeats} "
                f"interleaved runs; {args.dtype}; lower is better)\n"
            )
            print("| implementation | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
            print("| --- |" + " ---: |" * len(args.batches))
            for path in paths:
                cells = [_fmt(grid.timed.get((steps, hidden, path.label, b))) for b in args.batches]
                print(f"| {path.label} | " + " | ".join(cells) + " |")


def _ratio(theirs: float | str | None, mine: float) -> str:
    return f"{theirs / mine:.2f}x" if isinstance(theirs, float) else "—"


def print_summary(grid: Grid, paths: list[Path], args: argparse.Namespace) -> None:
    """Per cell the fastest xpnn path and how many times faster it is than the torch
    ones (above 1: xpnn is faster), with the targets where one applies."""
    print("\n### fastest xpnn path per size (µs per sequence; ratio = their µs / xpnn's)\n")
    print(
        "| T | hidden | batch | GFLOP/step | fastest xpnn path | µs | vs torch.nn.RNN "
        "| vs torch autograd | target |"
    )
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    targets: dict[int, tuple[str, float]] = {1: (TORCH_AUTOGRAD, 10.0), 1024: (TORCH_RNN, 3.0)}
    for steps in args.lengths:
        for hidden in args.hidden:
            for batch in args.batches:
                at = {p.label: grid.timed.get((steps, hidden, p.label, batch)) for p in paths}
                mine = [(v, label) for label, v in at.items() if label.startswith("xpnn")]
                mine = [(v, label) for v, label in mine if isinstance(v, float)]
                head = f"| {steps} | {hidden} | {batch} | {gflop(batch, hidden, steps):.3g} |"
                if not mine:
                    why = next((v for v in at.values() if isinstance(v, str)), "not measured")
                    print(f"{head} {why} | — | — | — | — |")
                    continue
                best, label = min(mine)
                target = "—"
                if batch in targets:
                    other, need = targets[batch]
                    theirs = at.get(other)
                    verdict = (
                        ("met" if theirs / best >= need else "not met")
                        if isinstance(theirs, float)
                        else "not measured"
                    )
                    target = f"≥{need:g}x vs {other}: {verdict}"
                print(
                    f"{head} {label} | {_fmt(best)} | {_ratio(at.get(TORCH_RNN), best)} | "
                    f"{_ratio(at.get(TORCH_AUTOGRAD), best)} | {target} |"
                )


def print_compiles(grid: Grid) -> None:
    print("\n### first call of each compiled step (trace and compile), seconds\n")
    if not grid.compiles and not grid.too_slow:
        print("(no compiled path in this run)")
        return
    print("| implementation | T | hidden | batch | seconds |\n| --- | ---: | ---: | ---: | ---: |")
    for (steps, hidden, label, batch), seconds in grid.compiles.items():
        print(f"| {label} | {steps} | {hidden} | {batch} | {seconds:.1f} |")
    for (label, steps), why in grid.too_slow.items():
        print(f"\n{label} at T {steps}: the other cells {why.removeprefix('skipped: ')}")


# -- main --------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=_ints, default=_ints("1,64,1024,16384"))
    parser.add_argument("--hidden", type=_ints, default=_ints("16,128,512"))
    parser.add_argument("--lengths", type=_ints, default=_ints("8,64"), help="sequence lengths T")
    parser.add_argument(
        "--backends",
        default=DEFAULT_BACKENDS,
        help=f"comma list of {', '.join(p.key for p in PATHS)} (default {DEFAULT_BACKENDS}; "
        "cupy for --device cuda)",
    )
    parser.add_argument(
        "--torch-compile",
        action="store_true",
        help="add xpnn-torch compile (torch.compile: 10-40 s cold compile per shape)",
    )
    parser.add_argument(
        "--max-gflop",
        type=float,
        default=120.0,
        help="skip cells whose step is estimated above this many GFLOP (default 120: the "
        "default grid in about 10 minutes on one core of a 2-core Xeon)",
    )
    parser.add_argument(
        "--compile-budget",
        type=float,
        default=30.0,
        help="seconds: once a compile at length T takes longer, that compiler's other "
        "cells at T are skipped (default 30)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--seconds", type=float, default=0.2, help="one timed run (default 0.2)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument(
        "--device", default=None, help="'cuda' for CuPy, JAX and torch (NumPy stays on the CPU)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP/XLA threads (default 1; 0: default)"
    )
    return parser.parse_args(argv)


def select_paths(args: argparse.Namespace) -> list[Path]:
    """The paths ``--backends`` and ``--torch-compile`` ask for that can run here."""
    keys = {k.strip() for k in args.backends.split(",")}
    if args.torch_compile:
        keys.add("torch-compile")
    unknown = keys - {p.key for p in PATHS}
    if unknown:
        sys.exit(f"rnn_scale_grid: unknown --backends entry {sorted(unknown)[0]!r}")
    paths = []
    for path in PATHS:
        if path.key not in keys:
            continue
        info = backend_info(path.backend)
        if info.usable:
            paths.append(path)
        else:
            print(f"skipping {path.label}: {info.reason}")
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads if args.threads >= 1 else None)
    began = time.perf_counter()
    print(machine_line(args.device))
    paths = select_paths(args)
    print(
        f"task: {INPUT}-H-{OUTPUT} RNN, tanh state, sigmoid output, squared error, SGD lr {LR}; "
        f"{args.dtype}; {args.repeats} repeats of ~{args.seconds:g} s, interleaved per cell; "
        f"cells over {args.max_gflop:g} GFLOP/step skipped"
    )
    grid = Grid()
    for steps in args.lengths:
        for hidden in args.hidden:
            for batch in args.batches:
                run_cell(grid, paths, steps, hidden, batch, args)
    print_cell_tables(grid, paths, args)
    print_summary(grid, paths, args)
    print_compiles(grid)
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s)")
    print("\n" + machine_line(args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
