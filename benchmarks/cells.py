"""How fast does xpnn train its cells, beside PyTorch's own modules?

One run measures microseconds per training sequence (forward, full BPTT, an SGD update)
of a 2-32-1 many-to-one network on the adding problem (16 steps, identity output, squared
error, lr 0.01) with the LSTM and the GRU cell, and of the simple RNN on binary addition
(``rnn``: 8 steps, 2-16-1, sigmoid state and output, squared error at every step, no
biases, lr 0.1, always float64, against ``torch.nn.RNN``, as in
``rnn_binary_addition.py``), for

* ``xpnn-<backend> eager``: ``xpnn.make_step(..., compile="off")`` on NumPy and PyTorch;
* ``xpnn-jax jit`` and (with ``--torch-compile``) ``xpnn-torch compile``: the same step
  compiled (``compile="on"``); the compile time is reported apart, not in the medians;
* ``torch.nn.LSTM`` / ``torch.nn.GRU``: PyTorch's modules with a ``Linear(32, 1)``, the
  same loss, ``loss.backward()`` and ``torch.optim.SGD``; ``torch.nn.RNN`` (tanh) with a
  ``Linear(16, 1)`` and a sigmoid, from xpnn's initial weights (``_runners.py``);

at batch 1, 64 and 1024, then prints the tables and the targets: at batch 1024 the
fastest xpnn path at least 2x faster than the PyTorch module (3x for the RNN). Last comes
the roofline (``roofline``): each cell's floor per sequence on one thread (its matmuls
timed at their own shapes, plus its bytes and transcendentals at this machine's copy and
``tanh`` rates, measured in the same run) and how many times the floor each path takes at
batch 1024 (the target: 2x or less). Every implementation
cycles over the same 4 batches, already on its device. Timing as in ``_timing.py``:
warm-up, calibrated runs of about ``--seconds``, interleaved round-robin, medians; one
BLAS/OpenMP thread unless ``--threads`` says otherwise. Speed is only measured here; no
test asserts on it.

    python benchmarks/cells.py [--cells lstm,gru,rnn] [--batch-sizes 1,64,1024]
        [--backends numpy,torch,jax] [--torch-compile]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any

import numpy as np
from _runners import PoolLoop, TorchModuleRNN, XpnnModel
from _timing import Case, machine_line, measure, pin_threads
from roofline import Shape, matmul_seconds, measure_peak, roofline_rows

import xpnn
from xpnn import datasets
from xpnn.backends import backend_info
from xpnn.course.networks import adding_network, addition_network

STEPS, INPUT, HIDDEN, LR, N_BATCHES = 16, 2, 32, 0.01, 4
BITS, RNN_HIDDEN, RNN_LR, RNN_DTYPE = 8, 16, 0.1, "float64"  # rnn_binary_addition.py's
TARGET_BATCH = 1024
TARGETS = {"lstm": 2.0, "gru": 2.0, "rnn": 3.0}
MODULES = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}


def shape_of(cell: str, dtype: str) -> Shape:
    """The network each cell is timed with, for the roofline."""
    if cell == "rnn":
        return Shape("rnn", BITS, INPUT, RNN_HIDDEN, 1, many_to_one=False, dtype=RNN_DTYPE)
    adding = {"many_to_one": True, "bias": True, "sigmoid_output": False}
    return Shape(cell, STEPS, INPUT, HIDDEN, 1, dtype=dtype, **adding)


def _batches(batch: int, cell: str = "lstm") -> list[tuple[Any, Any]]:
    """``N_BATCHES`` host batches: the adding problem's ``(STEPS, batch, 2)``, ``(batch, 1)``,
    or for ``rnn`` binary addition's ``(BITS, batch, 2)``, ``(BITS, batch, 1)``."""
    if cell == "rnn":
        xs, ds = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0).batches(0, N_BATCHES)
        cut = [slice(i * batch, (i + 1) * batch) for i in range(N_BATCHES)]
        return [(xs[:, part], ds[:, part]) for part in cut]
    xs, ds = datasets.AddingProblemStream(batch, STEPS, seed=0).batches(0, N_BATCHES)
    return [
        (xs[:, i * batch : (i + 1) * batch], ds[i * batch : (i + 1) * batch])
        for i in range(N_BATCHES)
    ]


def _network(cell: str, backend: str, dtype: str) -> Any:
    if cell == "rnn":
        return addition_network(hidden_size=RNN_HIDDEN, backend=backend, dtype=RNN_DTYPE)
    return adding_network(cell=cell, hidden_size=HIDDEN, backend=backend, dtype=dtype)


def xpnn_step(cell: str, backend: str, batch: int, compile: str, dtype: str) -> PoolLoop:
    """``xpnn.make_step`` in a loop over device-resident batches; its ``first_call`` is
    the first call's time (tracing and compiling, where the step is compiled)."""
    net = _network(cell, backend, dtype)
    lr = RNN_LR if cell == "rnn" else LR
    return PoolLoop(XpnnModel(net, xpnn.SGD(lr), compile), _batches(batch, cell))


def torch_rnn(batch: int) -> PoolLoop:
    """``torch.nn.RNN`` from the xpnn network's initial weights (``_runners.py``)."""
    init = {k: np.asarray(v) for k, v in _network("rnn", "numpy", RNN_DTYPE).params.items()}
    return PoolLoop(TorchModuleRNN(init, RNN_LR, None, RNN_DTYPE), _batches(batch, "rnn"))


class TorchModule:
    """``torch.nn.LSTM`` / ``torch.nn.GRU`` + ``Linear``, autograd, ``torch.optim.SGD``."""

    def __init__(self, cell: str, batch: int, dtype: str) -> None:
        torch = importlib.import_module("torch")
        self.torch = torch
        dt = getattr(torch, dtype)
        torch.manual_seed(0)
        kind = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn, self.out = kind(INPUT, HIDDEN, dtype=dt), torch.nn.Linear(HIDDEN, 1, dtype=dt)
        params = [*self.rnn.parameters(), *self.out.parameters()]
        self.opt = torch.optim.SGD(params, lr=LR)
        self.data = [
            (torch.tensor(x, dtype=dt), torch.tensor(d, dtype=dt)) for x, d in _batches(batch)
        ]
        self.batch = batch

    def __call__(self, iters: int) -> None:
        loss = None
        for i in range(iters):
            x, d = self.data[i % N_BATCHES]
            self.opt.zero_grad(set_to_none=True)
            hs, _ = self.rnn(x)
            loss = 0.5 * ((self.out(hs[-1]) - d) ** 2).sum() / self.batch
            loss.backward()
            self.opt.step()
        float(loss.detach())


def build_cases(args: argparse.Namespace, batches: list[int]) -> tuple[list[Case], list[str]]:
    """The cases to time, and lines giving each compiled case's first-call time."""
    paths = [("numpy", "off", "eager"), ("torch", "off", "eager"), ("jax", "on", "jit")]
    if args.torch_compile:
        paths.append(("torch", "on", "compile"))
    chosen = args.backends.split(",")
    paths = [path for path in paths if path[0] in chosen]
    cases, compile_lines = [], []
    for cell in args.cells.split(","):
        for backend, compile, label in paths:
            info = backend_info(backend)
            if not info.usable:
                print(f"skipping xpnn-{backend} {label}: {info.reason}")
                continue
            for batch in batches:
                runner = xpnn_step(cell, backend, batch, compile, args.dtype)
                name = f"{cell} xpnn-{backend} {label}"
                cases.append(Case(name, batch, runner))
                if compile == "on":
                    compile_lines.append(f"| {name} | {batch} | {runner.first_call:.1f} |")
                print(f"  built {name}, batch {batch}", flush=True)
        if "torch" in chosen and backend_info("torch").usable:
            kind = torch_rnn if cell == "rnn" else lambda b, c=cell: TorchModule(c, b, args.dtype)
            cases += [Case(f"{cell} {MODULES[cell]}", b, kind(b)) for b in batches]
    return cases, compile_lines


def print_tables(cases: list[Case], batches: list[int], args: argparse.Namespace) -> None:
    by = {(c.name, c.batch): c for c in cases}
    names = list(dict.fromkeys(c.name for c in cases))
    print(f"\n### µs per training sequence (median; {args.dtype}; lower is better)\n")
    print("| implementation | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("| --- |" + " ---: |" * len(batches))
    for name in names:
        cells = [f"{by[name, b].median:.2f}" if (name, b) in by else "—" for b in batches]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n### target: at batch {TARGET_BATCH}, the fastest xpnn path against the module\n")
    print("| cell | fastest xpnn path | its µs | module µs | xpnn faster by | target | result |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for cell in args.cells.split(","):
        at_target = [c for c in cases if c.batch == TARGET_BATCH]
        ours = [c for c in at_target if c.name.startswith(f"{cell} xpnn")]
        theirs = [c for c in at_target if c.name.startswith(f"{cell} torch")]
        target = TARGETS[cell]
        if not ours or not theirs:
            print(f"| {cell} | — | — | — | — | ≥{target:g}x | not measured |")
            continue
        best = min(ours, key=lambda c: c.median)
        ratio = theirs[0].median / best.median
        verdict = "met" if ratio >= target else "not met"
        print(
            f"| {cell} | {best.name} | {best.median:.2f} | {theirs[0].median:.2f} | "
            f"{ratio:.2f}x | ≥{target:g}x | {verdict} |"
        )


def print_roofline(cases: list[Case], batches: list[int], args: argparse.Namespace) -> None:
    """Each cell's floor at the largest batch timed (``roofline``), and each path's
    distance from it."""
    batch = max(batches)
    dtypes = {shape_of(cell, args.dtype).dtype for cell in args.cells.split(",")}
    peaks = {dt: measure_peak(dt, args.seconds) for dt in sorted(dtypes)}
    print(f"\n### roofline at batch {batch} (one thread; formulas in benchmarks/roofline.py)\n")
    for dt, peak in peaks.items():
        print(f"- {dt}: {peak.describe()}")
    print(
        "\n| cell | dtype | flop/seq | its matmuls' GFLOP/s | floor µs/seq | implementation "
        "| µs/seq | GFLOP/s | x the floor |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for cell in args.cells.split(","):
        shape = shape_of(cell, args.dtype)
        matmuls = matmul_seconds(shape, batch, args.seconds)
        timed = [(c.name, c.median) for c in cases if c.batch == batch and c.name.startswith(cell)]
        print("\n".join(roofline_rows(shape, batch, peaks[shape.dtype], matmuls, timed)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="lstm,gru,rnn", help="comma list (default all three)")
    parser.add_argument(
        "--backends", default="numpy,torch,jax", help="xpnn paths and torch modules to time"
    )
    parser.add_argument("--batch-sizes", default="1,64,1024", help="comma list (default 1,64,1024)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--seconds", type=float, default=0.5, help="one timed run (default 0.5)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float64", "float32"),
        help="the LSTM's and GRU's (the rnn is always float64)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1; 0: the default)"
    )
    parser.add_argument(
        "--torch-compile",
        action="store_true",
        help="also time xpnn on torch with torch.compile (tens of seconds per shape to compile)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads if args.threads >= 1 else None)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    began = time.perf_counter()
    print(machine_line(None))
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(
        f"task: adding problem, {STEPS} steps, {INPUT}-{HIDDEN}-1 many-to-one, squared error, "
        f"SGD lr {LR}; {args.dtype}; rnn: binary addition, {BITS} steps, {INPUT}-{RNN_HIDDEN}-1, "
        f"{RNN_DTYPE}, SGD lr {RNN_LR}; {args.repeats} repeats of ~{args.seconds:g} s, "
        "interleaved\n"
    )
    cases, compile_lines = build_cases(args, batches)
    measure(cases, args.repeats, args.seconds)
    print_tables(cases, batches, args)
    print_roofline(cases, batches, args)
    if compile_lines:
        print("\n### first call of a compiled step (trace and compile), seconds\n")
        print("| implementation | batch | seconds |\n| --- | ---: | ---: |")
        print("\n".join(compile_lines))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s; load average now {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
