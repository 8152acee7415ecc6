"""The one GPU script. On an NVIDIA GPU, in about 5 minutes, it measures

* the agreement rows of ``xpnn agree --gpu`` (CuPy and CUDA torch against NumPy), through
  ``xpnn.cli.agree``'s own machinery, on shortened runs;
* the RNN, LSTM and GRU training step (adding problem, ``--steps`` steps, 2-``--hidden``-1
  many-to-one, float32, SGD) at batch 64, 1024 and 16384, in µs per sequence, for:
  ``cupy eager`` (``make_step``, compile off); ``cupy graph`` (that step captured once as a
  CUDA graph and replayed, where CuPy can capture it; otherwise the row says why not);
  ``jax jit`` on the GPU; ``torch compile`` (``torch.compile(mode="reduce-overhead")``,
  what ``make_step`` picks on CUDA); ``cuDNN`` (``torch.nn.RNN/LSTM/GRU`` + ``Linear``);
  and ``numpy eager`` on the CPU at the largest batch, the baseline of the 20x target;
* a script-level experiment, not a backend hook: the forward gate arithmetic of one step
  (``cupy fuse gates``) as one ``cupy.fuse`` kernel against the same function unfused.

It writes one table, markdown to ``OUT.md`` and JSON to ``OUT.json`` (``--out OUT``),
prints it, and ends with the targets: the fastest xpnn GPU path at least as fast as cuDNN
at batch 1024, and at least 20x NumPy at hidden 512, batch 16384.

``--dry-run`` runs the same code paths on the CPU with NumPy (and CPU torch) stand-ins at
tiny sizes, through the same table writer, so the script cannot rot while no GPU is at
hand (``tests/test_gpu_script.py`` runs it). Its numbers mean nothing.

    python benchmarks/gpu.py --out gpu-table [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _runners import PoolLoop, XpnnModel
from _timing import Case, machine_line, measure

import xpnn
from xpnn import datasets
from xpnn.backends import backend_info
from xpnn.cli.agree.command import _compare_all
from xpnn.cli.agree.report import _json_row, _table
from xpnn.cli.agree.runs import RUNS
from xpnn.cli.agree.targets import targets
from xpnn.course.networks import adding_network

LR, N_BATCHES, CELLS = 0.01, 2, ("rnn", "lstm", "gru")
GPU_SIZES = {"batches": (64, 1024, 16384), "hidden": 512, "agree_steps": 20}
DRY_SIZES = {"batches": (2, 4, 8), "hidden": 3, "agree_steps": 2}


@dataclass
class Row:
    """One table row: a cell, an implementation, a batch, µs per sequence (None: not run,
    ``note`` says why)."""

    cell: str
    path: str
    batch: int
    us: float | None
    note: str = ""


def _batches(batch: int, steps: int) -> list[tuple[Any, Any]]:
    xs, ds = datasets.AddingProblemStream(batch, steps, seed=0).batches(0, N_BATCHES)
    return [
        (xs[:, i * batch : (i + 1) * batch], ds[i * batch : (i + 1) * batch])
        for i in range(N_BATCHES)
    ]


def _xpnn(cell: str, backend: str, device: Any, hidden: int, compile: str) -> XpnnModel:
    net = adding_network(
        cell=cell, hidden_size=hidden, backend=backend, device=device, dtype="float32"
    )
    return XpnnModel(net, xpnn.SGD(LR), compile)


class GraphStep:
    """An xpnn step captured once as a CUDA graph on a CuPy stream, then replayed on new
    batches copied into the captured input buffers. Every replay starts from the captured
    parameters (a timing of the step, not training). ``capture`` is False on a stand-in:
    the eager step, through the same loop."""

    def __init__(self, model: XpnnModel, capture: bool) -> None:
        self.model, self.graph = model, None
        if not capture:
            return
        cupy = importlib.import_module("cupy")
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.cupy = cupy

    def to_device(self, a: Any) -> Any:
        return self.model.to_device(a)

    def step(self, x: Any, d: Any) -> Any:
        if not hasattr(self, "stream"):
            return self.model.step(x, d)
        if self.graph is None:  # capture on the first call, with this batch's buffers
            self.x, self.d = x, d
            with self.stream:
                self.stream.begin_capture()
                self.out = self.model.step_fn(self.model.params, self.model.state, x, d)
                self.graph = self.stream.end_capture()
        self.x[...] = x  # the captured graph reads these buffers
        self.d[...] = d
        self.graph.launch(stream=self.stream)
        return self.out[2]


class CudnnModule:
    """``torch.nn.RNN`` (tanh) / ``LSTM`` / ``GRU`` + ``Linear``, autograd, SGD."""

    def __init__(self, cell: str, hidden: int, device: str) -> None:
        torch = importlib.import_module("torch")
        self.torch, self.device = torch, torch.device(device)
        torch.manual_seed(0)
        kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        kw = {"dtype": torch.float32, "device": self.device}
        self.rnn, self.out = kind(2, hidden, **kw), torch.nn.Linear(hidden, 1, **kw)
        self.opt = torch.optim.SGD([*self.rnn.parameters(), *self.out.parameters()], lr=LR)

    def to_device(self, a: Any) -> Any:
        return self.torch.tensor(a, dtype=self.torch.float32, device=self.device)

    def step(self, x: Any, d: Any) -> Any:
        self.opt.zero_grad(set_to_none=True)
        hs, _ = self.rnn(x)
        loss = 0.5 * ((self.out(hs[-1]) - d) ** 2).sum() / x.shape[1]
        loss.backward()
        self.opt.step()
        return loss.detach()


class FusedGates:
    """The LSTM's forward gate arithmetic on its four gate blocks ``(B, H)`` and ``c``
    (the cell's sigmoid as ``0.5 * tanh(a / 2) + 0.5``), as one ``cupy.fuse`` kernel or
    unfused (the stand-in: NumPy, unfused): the script-level experiment."""

    def __init__(self, hidden: int, batch: int, fuse: bool, on_gpu: bool) -> None:
        xp = importlib.import_module("cupy" if on_gpu else "numpy")
        rng = xp.random.default_rng(0)
        self.blocks = [rng.standard_normal((batch, hidden), dtype=xp.float32) for _ in range(5)]

        def cell(ai: Any, af: Any, ag: Any, ao: Any, c: Any) -> tuple[Any, Any]:
            c = (0.5 * xp.tanh(0.5 * af) + 0.5) * c + (0.5 * xp.tanh(0.5 * ai) + 0.5) * xp.tanh(ag)
            return (0.5 * xp.tanh(0.5 * ao) + 0.5) * xp.tanh(c), c

        self.cell = xp.fuse(cell) if fuse else cell

    def __call__(self, iters: int) -> None:
        out = None
        for _ in range(iters):
            out = self.cell(*self.blocks)
        float(out[0][0, 0])  # sync


def paths() -> list[tuple[str, str]]:
    """(implementation, backend that must be usable) in table order."""
    return [
        ("cupy eager", "cupy"),
        ("cupy graph", "cupy"),
        ("jax jit", "jax"),
        ("torch compile", "torch"),
        ("cuDNN", "torch"),
    ]


def build(path: str, cell: str, batch: int, sizes: dict, dry: bool, steps: int) -> Any:
    """The runner of one implementation: a ``PoolLoop`` (or a callable of ``iters``)."""
    hidden, data = sizes["hidden"], _batches(batch, steps)
    gpu = None if dry else "cuda"
    if path == "numpy eager":
        return PoolLoop(_xpnn(cell, "numpy", None, hidden, "off"), data)
    if path == "cupy eager":
        return PoolLoop(_xpnn(cell, "numpy" if dry else "cupy", None, hidden, "off"), data)
    if path == "cupy graph":
        model = _xpnn(cell, "numpy" if dry else "cupy", None, hidden, "off")
        return PoolLoop(GraphStep(model, capture=not dry), data[:1])
    if path == "jax jit":  # stand-in: the same make_step on NumPy (no compile)
        model = (
            _xpnn(cell, "numpy", None, hidden, "off")
            if dry
            else _xpnn(cell, "jax", "gpu", hidden, "on")
        )
        return PoolLoop(model, data)
    if path == "torch compile":  # on CUDA make_step compiles with mode="reduce-overhead"
        model = (
            _xpnn(cell, "numpy", None, hidden, "off")
            if dry
            else _xpnn(cell, "torch", gpu, hidden, "on")
        )
        return PoolLoop(model, data)
    if path == "cuDNN":
        return PoolLoop(CudnnModule(cell, hidden, "cpu" if dry else "cuda"), data)
    msg = f"unknown path {path}"
    raise ValueError(msg)


def usable(backend: str, dry: bool) -> str:
    """Why ``backend`` cannot run here ('' if it can); the stand-ins need NumPy/torch."""
    if dry:
        backend = "torch" if backend == "torch" else "numpy"
    info = backend_info(backend)
    return "" if info.usable else info.reason


def time_rows(sizes: dict, dry: bool, steps: int, seconds: float, repeats: int) -> list[Row]:
    """Every implementation at every batch, timed interleaved; unrunnable ones as notes."""
    rows: list[Row] = []
    cases: list[tuple[Row, Case]] = []
    for cell in CELLS:
        for path, backend in paths():
            reason = usable(backend, dry)
            for batch in sizes["batches"]:
                row = Row(cell, path, batch, None, reason)
                rows.append(row)
                if reason:
                    continue
                try:
                    runner = build(path, cell, batch, sizes, dry, steps)
                except Exception as exc:  # no capture support, no GPU in jax: say so
                    row.note = f"{type(exc).__name__}: {str(exc)[:80]}"
                    continue
                cases.append((row, Case(f"{cell} {path}", batch, runner)))
        top = sizes["batches"][-1]
        row = Row(cell, "numpy eager (cpu)", top, None)
        rows.append(row)
        cases.append(
            (row, Case(f"{cell} numpy", top, build("numpy eager", cell, top, sizes, dry, steps)))
        )
        fuse_ok = dry or backend_info("cupy").usable
        for fused in (False, True):
            name = "cupy fuse gates (fwd only)" if fused else "cupy gates unfused (fwd only)"
            row = Row(cell, name, top, None, "" if fuse_ok else "cupy not usable")
            if cell == "lstm":  # the experiment is the LSTM's gates
                rows.append(row)
                if fuse_ok:
                    runner = FusedGates(
                        sizes["hidden"], top, fuse=fused and not dry, on_gpu=not dry
                    )
                    cases.append((row, Case(name, top, runner)))
    measure([case for _, case in cases], repeats, seconds)
    for row, case in cases:
        row.us = case.median
    return rows


def agreement(sizes: dict, dry: bool) -> list[Any]:
    """The rows of ``xpnn agree`` (``--gpu`` on a GPU; array-api-strict against NumPy on
    the stand-in), every run shortened to ``agree_steps`` iterations."""
    names = ["array_api_strict"] if dry else ["cupy", "torch", "jax"]
    found, skipped = targets(names, gpu=not dry, compiled=() if dry else ("jax",))
    for line in skipped:
        print(line)
    runs = [replace(run, steps=sizes["agree_steps"]) for run in RUNS.values()]
    version = backend_info("numpy").version or "?"
    return _compare_all(runs, found, version)


def targets_lines(rows: list[Row], sizes: dict) -> list[str]:
    """The two targets, met or not, from the timed rows."""
    xpnn_gpu = ("cupy eager", "cupy graph", "jax jit", "torch compile")
    lines = []

    def best(cell: str, batch: int, names: tuple[str, ...]) -> float | None:
        times = [r.us for r in rows if r.cell == cell and r.batch == batch and r.path in names]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    middle, top = sizes["batches"][1], sizes["batches"][-1]
    for cell in CELLS:
        ours, cudnn = best(cell, middle, xpnn_gpu), best(cell, middle, ("cuDNN",))
        if ours is None or cudnn is None:
            lines.append(f"{cell}: at least cuDNN at batch {middle}: not measured")
        else:
            met = "met" if ours <= cudnn else "not met"
            lines.append(f"{cell}: at least cuDNN at batch {middle}: {met}, {cudnn / ours:.2f}x")
        fast, numpy = best(cell, top, xpnn_gpu), best(cell, top, ("numpy eager (cpu)",))
        what = f"at least 20x NumPy at hidden {sizes['hidden']}, batch {top}"
        if fast is None or numpy is None:
            lines.append(f"{cell}: {what}: not measured")
        else:
            lines.append(
                f"{cell}: {what}: {'met' if numpy / fast >= 20 else 'not met'}, {numpy / fast:.1f}x"
            )
    return lines


def write(
    out: Path, header: list[str], agree_rows: list[Any], rows: list[Row], goals: list[str]
) -> str:
    """The markdown table (returned, and written to ``out.md``) and ``out.json``."""
    md = [*header, "", "### agreement", "", "```", *_table(agree_rows), "```", ""]
    md += ["### µs per sequence", ""]
    md += ["| cell | implementation | batch | µs/seq | note |", "| --- | --- | ---: | ---: | --- |"]
    for r in rows:
        us = "-" if r.us is None else f"{r.us:.3g}"
        md.append(f"| {r.cell} | {r.path} | {r.batch} | {us} | {r.note} |")
    md += ["", "### targets", "", *goals]
    text = "\n".join(md) + "\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    data = {
        "header": header,
        "agreement": [_json_row(r) for r in agree_rows],
        "rows": [vars(r) for r in rows],
        "targets": goals,
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="OUT: writes OUT.md, OUT.json")
    parser.add_argument("--dry-run", action="store_true", help="NumPy stand-ins, tiny sizes")
    parser.add_argument("--steps", type=int, default=16, help="sequence length (default 16)")
    parser.add_argument("--seconds", type=float, default=0.2, help="one timed run (default 0.2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dry = args.dry_run
    sizes = DRY_SIZES if dry else GPU_SIZES
    steps, seconds, repeats = (3, 1e-4, 1) if dry else (args.steps, args.seconds, args.repeats)
    began = time.perf_counter()
    header = [
        "# xpnn on the GPU" + (" -- DRY RUN on NumPy stand-ins: no GPU numbers" if dry else ""),
        machine_line(None if dry else "cuda"),
        f"adding problem, {steps} steps, 2-{sizes['hidden']}-1 many-to-one, float32, SGD lr {LR}",
    ]
    agree_rows = agreement(sizes, dry)
    rows = time_rows(sizes, dry, steps, seconds, repeats)
    goals = targets_lines(rows, sizes)
    print(write(args.out, header, agree_rows, rows, goals))
    print(f"(whole run: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
