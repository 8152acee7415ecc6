"""Issue 3: how fast does xpnn train the course's binary-addition RNN?

One run measures microseconds per training sequence (one forward pass, full BPTT and an
SGD update; 8 bits, a 2-16-1 RNN, sigmoid hidden and output, squared error, lr 0.1) for

* ``xpnn-<backend>``: ``xpnn.training.train.train`` on ``xpnn.datasets.BinaryAdditionStream``, the
  loop ``xpnn train binary-addition`` runs, on every backend usable here, with the step
  eager (``compile="off"``) and, on JAX and PyTorch, compiled (``jax.jit``,
  ``torch.compile``; their first call, the compile, is timed apart and reported alone);
* ``xpnn-<backend> raw step``: the compiled step called from a Python loop, once per
  iteration, on batches already on the device, which ``train`` is measured against (on
  JAX ``train`` runs the iterations between readings in one compiled call, so it can
  be faster);
* ``notebook loop``: the course notebook's per-sample NumPy loop (seed 002), transcribed
  with its per-step loss and bookkeeping but without prints and plots (batch 1 only);
* ``torch autograd``: the same cell written with torch ops, a Python loop over time,
  ``loss.backward()`` and a manual SGD step under ``no_grad``;
* ``torch.nn.RNN``: PyTorch's own RNN (tanh, the only sigmoid-like nonlinearity it
  offers) with a ``Linear(16, 1)`` and a sigmoid, the same loss, ``torch.optim.SGD``;

then the wall time xpnn on NumPy needs to add all 16384 operand pairs exactly, and prints
the tables. Speed is only measured here; no test asserts on it.

Timing: every implementation runs once to warm up (JAX compiles, caches fill), its
iteration count is chosen so that one timed run lasts about ``--seconds``, and the timed
runs are interleaved round-robin over the implementations so that the machine's noise hits
all of them alike; the table gives the median. Every timed run ends with a device sync
(a value read back to the host, or ``torch.cuda.synchronize``). NumPy's BLAS and torch run
on one thread unless ``--threads`` says otherwise: on a small shared machine two spinning
BLAS/OpenMP threads per process make the multi-threaded numbers swing by 10x and more.

Run it with ``python benchmarks/rnn_binary_addition.py`` (``--help`` for the options), or
``nox -s bench``. On a GPU machine: ``--device cuda`` (CuPy and CUDA PyTorch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import xpnn
from xpnn import datasets
from xpnn.backend import BACKENDS, COMPILERS, backend_info
from xpnn.course.networks import addition_accuracy
from xpnn.optim import SGD
from xpnn.step import make_step
from xpnn.training.train import train

BITS, INPUT, HIDDEN, OUTPUT, LR = 8, 2, 16, 1, 0.1
NOTEBOOK, TORCH_AUTOGRAD, TORCH_RNN = "notebook loop", "torch autograd", "torch.nn.RNN"
TARGETS = (  # (batch, competitor, how many times faster the fastest xpnn path should be)
    (1, NOTEBOOK, 10.0),
    (1, TORCH_AUTOGRAD, 10.0),
    (1024, TORCH_RNN, 3.0),
)


# -- the implementations -----------------------------------------------------------------


class XpnnRunner:
    """``xpnn.training.train.train`` exactly as users call it (loss read every 100
    iterations), the step eager or compiled. Successive calls continue one run (``start``),
    so a compiled step is compiled once, in the warm-up."""

    def __init__(self, backend: str, batch: int, device: Any, dtype: str, compile: str) -> None:
        device = None if backend in ("numpy", "array_api_strict") else device
        self.net = xpnn.RNN(
            INPUT, HIDDEN, OUTPUT, seed=0, backend=backend, device=device, dtype=dtype
        )
        self.stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)
        self.opt, self.compile, self.done, self.state = SGD(LR), compile, 0, None
        self.first_call = None  # seconds of the first step (the compile included)

    def __call__(self, iters: int) -> None:
        stop = self.done + iters
        result = train(
            self.net,
            self.opt,
            self.stream,
            iters=stop,
            start=self.done,
            state=self.state,
            log_every=100,
            compile=self.compile,
        )
        self.done, self.state = stop, result.state
        if self.first_call is None:
            self.first_call = result.compile_seconds
        xpnn.to_numpy(self.net.params["W_out"])  # sync: the last update has finished


class RawStepRunner:
    """``make_step``'s compiled step called once per iteration from a bare Python loop,
    on batches already on the device."""

    def __init__(self, backend: str, batch: int, device: Any, dtype: str) -> None:
        device = None if backend in ("numpy", "array_api_strict") else device
        self.net = xpnn.RNN(
            INPUT, HIDDEN, OUTPUT, seed=0, backend=backend, device=device, dtype=dtype
        )
        opt = SGD(LR)
        self.step = make_step(self.net, opt, compile="on")
        xs, ds = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0).batches(0, datasets.CHUNK)
        x_all, d_all = self.net.asarray(xs), self.net.asarray(ds)
        self.batches = [
            (x_all[:, j * batch : (j + 1) * batch], d_all[:, j * batch : (j + 1) * batch])
            for j in range(datasets.CHUNK)
        ]
        self.params, self.state = self.net.params, opt.init(self.net.params)

    def __call__(self, iters: int) -> None:
        params, state, loss = self.params, self.state, None
        for i in range(iters):
            x, d = self.batches[i % len(self.batches)]
            params, state, loss = self.step(params, state, x, d)
        float(loss)  # sync
        self.params, self.state = params, state


def _course_functions() -> Any:
    """The course's ``common/functions.py`` (the parts the notebook calls), verbatim."""

    class functions:
        @staticmethod
        def sigmoid(x):
            return 1 / (1 + np.exp(-x))

        @staticmethod
        def d_sigmoid(x):
            dx = (1.0 - functions.sigmoid(x)) * functions.sigmoid(x)
            return dx

        @staticmethod
        def mean_squared_error(d, y):
            return np.mean(np.square(d - y)) / 2

        @staticmethod
        def d_mean_squared_error(d, y):
            if type(d) == np.ndarray:  # noqa: E721  (the course's test)
                batch_size = d.shape[0]
                dx = (y - d) / batch_size
            else:
                dx = y - d
            return dx

    return functions


class NotebookRunner:
    """Notebook 3_1 (seed 002, first listing), one sequence per iteration.

    The body of ``__call__`` is the notebook's loop line for line, without its prints and
    plot; the only change is ``y[0, t]`` for ``y[:, t]`` where a one-element array is
    assigned to a scalar slot, which NumPy 2 refuses.
    """

    def __init__(self) -> None:
        np.random.seed(0)  # noqa: NPY002  (the notebook uses the global generator)
        binary_dim = 8
        largest_number = pow(2, binary_dim)
        self.binary = np.unpackbits(np.array([range(largest_number)], dtype=np.uint8).T, axis=1)
        self.binary_dim, self.largest_number = binary_dim, largest_number
        input_layer_size, hidden_layer_size, output_layer_size = 2, 16, 1
        weight_init_std = 1
        self.learning_rate, self.plot_interval = 0.1, 100
        self.W_in = weight_init_std * np.random.randn(input_layer_size, hidden_layer_size)  # noqa: NPY002
        self.W_out = weight_init_std * np.random.randn(hidden_layer_size, output_layer_size)  # noqa: NPY002
        self.W = weight_init_std * np.random.randn(hidden_layer_size, hidden_layer_size)  # noqa: NPY002
        self.W_in_grad = np.zeros_like(self.W_in)
        self.W_out_grad = np.zeros_like(self.W_out)
        self.W_grad = np.zeros_like(self.W)
        self.u = np.zeros((hidden_layer_size, binary_dim + 1))
        self.z = np.zeros((hidden_layer_size, binary_dim + 1))
        self.y = np.zeros((output_layer_size, binary_dim))
        self.delta_out = np.zeros((output_layer_size, binary_dim))
        self.delta = np.zeros((hidden_layer_size, binary_dim + 1))
        self.all_losses: list[float] = []
        self.done = 0

    def __call__(self, iters_num: int) -> None:
        functions = _course_functions()
        binary, binary_dim, largest_number = self.binary, self.binary_dim, self.largest_number
        W_in, W_out, W = self.W_in, self.W_out, self.W
        W_in_grad, W_out_grad, W_grad = self.W_in_grad, self.W_out_grad, self.W_grad
        u, z, y, delta_out, delta = self.u, self.z, self.y, self.delta_out, self.delta
        learning_rate, plot_interval, all_losses = (
            self.learning_rate,
            self.plot_interval,
            self.all_losses,
        )
        for i in range(self.done, self.done + iters_num):
            a_int = np.random.randint(largest_number / 2)  # noqa: NPY002
            a_bin = binary[a_int]
            b_int = np.random.randint(largest_number / 2)  # noqa: NPY002
            b_bin = binary[b_int]
            d_int = a_int + b_int
            d_bin = binary[d_int]
            out_bin = np.zeros_like(d_bin)
            all_loss = 0
            for t in range(binary_dim):
                X = np.array([a_bin[-t - 1], b_bin[-t - 1]]).reshape(1, -1)
                dd = np.array([d_bin[binary_dim - t - 1]])
                u[:, t + 1] = np.dot(X, W_in) + np.dot(z[:, t].reshape(1, -1), W)
                z[:, t + 1] = functions.sigmoid(u[:, t + 1])
                y[:, t] = functions.sigmoid(np.dot(z[:, t + 1].reshape(1, -1), W_out))
                loss = functions.mean_squared_error(dd, y[:, t])
                delta_out[:, t] = functions.d_mean_squared_error(dd, y[:, t]) * functions.d_sigmoid(
                    y[:, t]
                )
                all_loss += loss
                out_bin[binary_dim - t - 1] = np.round(y[0, t])  # NumPy 2: y[0, t]
            for t in range(binary_dim)[::-1]:
                X = np.array([a_bin[-t - 1], b_bin[-t - 1]]).reshape(1, -1)
                delta[:, t] = (
                    np.dot(delta[:, t + 1].T, W.T) + np.dot(delta_out[:, t].T, W_out.T)
                ) * functions.d_sigmoid(u[:, t + 1])
                W_out_grad += np.dot(z[:, t + 1].reshape(-1, 1), delta_out[:, t].reshape(-1, 1))
                W_grad += np.dot(z[:, t].reshape(-1, 1), delta[:, t].reshape(1, -1))
                W_in_grad += np.dot(X.T, delta[:, t].reshape(1, -1))
            W_in -= learning_rate * W_in_grad
            W_out -= learning_rate * W_out_grad
            W -= learning_rate * W_grad
            W_in_grad *= 0
            W_out_grad *= 0
            W_grad *= 0
            if i % plot_interval == 0:
                all_losses.append(all_loss)
        self.done += iters_num


def _torch_data(stream: Any, lo: int, hi: int, torch: Any, dtype: Any, device: Any) -> Any:
    xs, ds = stream.batches(lo, hi)
    return (torch.as_tensor(a, dtype=dtype, device=device) for a in (xs, ds))


def _torch_sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchAutogradRunner:
    """The notebook's cell in torch ops: a loop over time, the output layer as one matmul
    over all steps, ``loss.backward()``, ``p -= lr * p.grad`` under ``no_grad``. The same
    initial weights and data as xpnn; data moves to the device 128 iterations at a time."""

    def __init__(self, batch: int, device: str | None, dtype: str) -> None:
        import torch

        self.torch, self.batch = torch, batch
        self.device = torch.device(device or "cpu")
        self.dtype = getattr(torch, dtype)
        init = xpnn.RNN(INPUT, HIDDEN, OUTPUT, seed=0).params
        self.params = [
            torch.tensor(np.asarray(init[k]), dtype=self.dtype, device=self.device).requires_grad_()
            for k in ("W_in", "W", "W_out")
        ]
        self.stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)

    def __call__(self, iters: int) -> None:
        torch, b = self.torch, self.batch
        w_in, w, w_out = self.params
        for lo in range(0, iters, datasets.CHUNK):
            hi = min(iters, lo + datasets.CHUNK)
            xs_all, ds_all = _torch_data(self.stream, lo, hi, torch, self.dtype, self.device)
            for j in range(hi - lo):
                xs, ds = xs_all[:, j * b : (j + 1) * b], ds_all[:, j * b : (j + 1) * b]
                z = torch.zeros((b, HIDDEN), dtype=self.dtype, device=self.device)
                zs = []
                for t in range(BITS):
                    z = torch.sigmoid(xs[t] @ w_in + z @ w)
                    zs.append(z)
                y = torch.sigmoid(torch.stack(zs) @ w_out)
                loss = 0.5 * torch.sum((y - ds) ** 2) / b
                loss.backward()
                with torch.no_grad():
                    for p in self.params:
                        p -= LR * p.grad
                        p.grad = None
        _torch_sync(torch, self.device)


class TorchRNNRunner:
    """``torch.nn.RNN(2, 16, nonlinearity="tanh")`` + ``Linear(16, 1)`` + sigmoid, loss
    ``0.5 * sum((y - d)**2) / B``, ``torch.optim.SGD(lr=0.1)``."""

    def __init__(self, batch: int, device: str | None, dtype: str) -> None:
        import torch

        self.torch, self.batch = torch, batch
        self.device = torch.device(device or "cpu")
        self.dtype = getattr(torch, dtype)
        torch.manual_seed(0)
        self.rnn = torch.nn.RNN(INPUT, HIDDEN, nonlinearity="tanh").to(self.device, self.dtype)
        self.linear = torch.nn.Linear(HIDDEN, OUTPUT).to(self.device, self.dtype)
        params = [*self.rnn.parameters(), *self.linear.parameters()]
        self.opt = torch.optim.SGD(params, lr=LR)
        self.stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)

    def __call__(self, iters: int) -> None:
        torch, b = self.torch, self.batch
        for lo in range(0, iters, datasets.CHUNK):
            hi = min(iters, lo + datasets.CHUNK)
            xs_all, ds_all = _torch_data(self.stream, lo, hi, torch, self.dtype, self.device)
            for j in range(hi - lo):
                xs, ds = xs_all[:, j * b : (j + 1) * b], ds_all[:, j * b : (j + 1) * b]
                out, _ = self.rnn(xs)
                y = torch.sigmoid(self.linear(out))
                loss = 0.5 * torch.sum((y - ds) ** 2) / b
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
        _torch_sync(torch, self.device)


# -- timing ------------------------------------------------------------------------------


@dataclass
class Case:
    """One implementation at one batch size, and its timed runs (µs per sequence)."""

    name: str
    batch: int
    run: Callable[[int], None]
    iters: int = 0
    samples: list[float] = field(default_factory=list)

    def time_once(self) -> float:
        began = time.perf_counter()
        self.run(self.iters)
        return time.perf_counter() - began

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def calibrate(case: Case, seconds: float) -> None:
    """Warm up, then pick the iteration count for one timed run of about ``seconds``."""
    case.run(2)  # warm-up: compilation, caches, the first allocations
    iters = 4
    while True:
        case.iters = iters
        elapsed = case.time_once()
        if elapsed >= seconds / 4 or iters >= 1 << 20:
            break
        iters *= 4
    case.iters = max(3, round(iters * seconds / max(elapsed, 1e-9)))


def measure(cases: list[Case], repeats: int, seconds: float) -> None:
    for case in cases:
        calibrate(case, seconds)
        print(f"  calibrated {case.name} batch {case.batch}: {case.iters} iterations", flush=True)
    for r in range(repeats):  # round-robin, so that noise is shared
        for case in cases:
            elapsed = case.time_once()
            case.samples.append(elapsed / (case.iters * case.batch) * 1e6)
        print(f"  repeat {r + 1}/{repeats} done", flush=True)


# -- convergence -------------------------------------------------------------------------


def time_to_exact(
    batch: int, lr: float, slice_iters: int, max_iters: int, dtype: str
) -> tuple[int | None, float, float, int]:
    """Train xpnn on NumPy (seed 0) in slices of ``slice_iters`` iterations, checking all
    operand pairs after each slice. Returns (iterations to 100 % exact or None, training
    seconds, evaluation seconds, exact pairs at the end)."""
    net = xpnn.RNN(INPUT, HIDDEN, OUTPUT, seed=0, dtype=dtype)
    stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)
    opt = SGD(lr)
    train_s = eval_s = 0.0
    exact = 0
    for stop in range(slice_iters, max_iters + 1, slice_iters):
        began = time.perf_counter()
        train(net, opt, stream, iters=stop, start=stop - slice_iters, log_every=100)
        middle = time.perf_counter()
        exact, total = addition_accuracy(net, BITS)
        eval_s += time.perf_counter() - middle
        train_s += middle - began
        if exact == total:
            return stop, train_s, eval_s, exact
    return None, train_s, eval_s, exact


# -- reporting ---------------------------------------------------------------------------


def machine_line(device: str | None) -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or cpu
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    versions = [f"Python {platform.python_version()}", f"xpnn {xpnn.__version__}"]
    for module in ("numpy", "array_api_compat", "array_api_strict", "torch", "jax", "cupy"):
        try:
            mod = importlib.import_module(module)
        except Exception:  # not installed, or broken: just leave it out
            continue
        versions.append(f"{module} {getattr(mod, '__version__', '?')}")
        if module == "torch":
            versions[-1] += f" ({mod.get_num_threads()} threads)"
            if device and device.startswith("cuda") and mod.cuda.is_available():
                versions.append(f"GPU {mod.cuda.get_device_name(0)}")
    threads = ", ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ)
    return (
        f"Machine: {cpu}, {cores} cores ({usable} usable), {platform.system()} "
        f"{platform.machine()}; " + ", ".join(versions) + (f"; {threads}" if threads else "")
    )


def print_tables(cases: list[Case], batches: list[int], dtype: str) -> None:
    by = {(c.name, c.batch): c for c in cases}
    names = list(dict.fromkeys(c.name for c in cases))
    print("\n### every case: iterations per timed run, µs per sequence min / median / max\n")
    for c in cases:
        print(
            f"- {c.name}, batch {c.batch}: {c.iters} iterations; {min(c.samples):.2f} / "
            f"{c.median:.2f} / {max(c.samples):.2f}"
        )
    print(f"\n### µs per training sequence (median; {dtype}; lower is better)\n")
    print("| implementation | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("| --- |" + " ---: |" * len(batches))
    for name in names:
        cells = [f"{by[name, b].median:.2f}" if (name, b) in by else "—" for b in batches]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n### first call of each compiled step (the compile), apart from the timings\n")
    for c in cases:
        first = getattr(c.run, "first_call", None)
        if "(" in c.name and "raw" not in c.name and first is not None:
            print(f"- {c.name}, batch {c.batch}: {first:.2f} s")

    def fastest(batch: int) -> Case | None:
        mine = [c for c in cases if c.batch == batch and c.name.startswith("xpnn-")]
        mine = [c for c in mine if "raw" not in c.name]
        return min(mine, key=lambda c: c.median) if mine else None

    print("\n### targets (medians, side by side in this run)\n")
    print("| target | xpnn path | µs | against | their µs | ratio | needed | result |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |")

    def row(what: str, mine: Case | None, other: Case | None, need: float) -> None:
        if mine is None or other is None:
            print(f"| {what} | — | — | — | — | — | {need:g}x | not measured |")
            return
        ratio = other.median / mine.median
        verdict = "met" if ratio >= need else "not met"
        print(
            f"| {what} | {mine.name} | {mine.median:.2f} | {other.name} | {other.median:.2f} "
            f"| {ratio:.2f}x | ≥{need:g}x | {verdict} |"
        )

    for batch, other, need in TARGETS:
        row(f"batch {batch}: fastest xpnn vs {other}", fastest(batch), by.get((other, batch)), need)
    jit = by.get(("xpnn-jax (jax.jit)", 1))
    row("batch 1: JAX compiled vs JAX eager", jit, by.get(("xpnn-jax", 1)), 100.0)
    for name in ("xpnn-jax (jax.jit)", "xpnn-torch (torch.compile)"):
        trained, raw = by.get((name, 1)), by.get((f"{name} raw step", 1))
        if trained is not None and raw is not None:
            over = trained.median / raw.median
            verdict = "met" if over <= 1.1 else "not met"
            print(
                f"| batch 1: train() vs the raw step | {name} | {trained.median:.2f} | raw step "
                f"| {raw.median:.2f} | {over:.2f}x the raw step's time | ≤1.1x | {verdict} |"
            )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends",
        default="all",
        help="comma list of xpnn backends, or 'all' (default: every usable one)",
    )
    parser.add_argument("--batch-sizes", default="1,64,1024", help="comma list (default 1,64,1024)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median)")
    parser.add_argument(
        "--seconds", type=float, default=0.4, help="length of one timed run (default 0.4)"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="device for torch, jax and cupy, e.g. 'cuda' (NumPy and array-api-strict "
        "always run on the CPU)",
    )
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads for NumPy and torch (default 1: a per-core comparison, "
        "steady on a shared machine; 0: the libraries' own defaults)",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="time xpnn only (no notebook loop, torch autograd, torch.nn.RNN)",
    )
    parser.add_argument(
        "--no-convergence", action="store_true", help="skip the time-to-100%%-exact runs"
    )
    parser.add_argument(
        "--compiled",
        default="jax,torch",
        help="backends whose compiled step is timed too (default jax,torch; torch.compile "
        "takes 10-40 s per batch size)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 short repeats, no convergence runs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds, args.no_convergence = 3, 0.05, True
    return args


def build_cases(args: argparse.Namespace, batches: list[int]) -> list[Case]:
    wanted = list(BACKENDS) if args.backends == "all" else args.backends.split(",")
    backends = []
    for name in wanted:
        info = backend_info(name.strip())
        if info.usable:
            backends.append(info.name)
        else:
            print(f"skipping xpnn-{name}: {info.reason}")
    has_torch = backend_info("torch").usable
    if not has_torch and not args.no_baselines:
        print("skipping the torch baselines: torch is not installed")
    cases = []
    if "numpy" in backends:
        cases += [
            Case("xpnn-numpy", b, XpnnRunner("numpy", b, None, args.dtype, "off")) for b in batches
        ]
    if not args.no_baselines:
        if 1 in batches:
            cases.append(Case(NOTEBOOK, 1, NotebookRunner()))
        if has_torch:
            cases += [
                Case(TORCH_AUTOGRAD, b, TorchAutogradRunner(b, args.device, args.dtype))
                for b in batches
            ]
            cases += [
                Case(TORCH_RNN, b, TorchRNNRunner(b, args.device, args.dtype)) for b in batches
            ]
    for name in backends:
        if name == "numpy":
            continue
        try:
            cases += [
                Case(f"xpnn-{name}", b, XpnnRunner(name, b, args.device, args.dtype, "off"))
                for b in batches
            ]
            if name in COMPILERS and name in args.compiled.split(","):
                label = f"xpnn-{name} ({COMPILERS[name]})"
                cases += [
                    Case(label, b, XpnnRunner(name, b, args.device, args.dtype, "on"))
                    for b in batches
                ]
                cases += [
                    Case(f"{label} raw step", 1, RawStepRunner(name, 1, args.device, args.dtype))
                ]
        except Exception as exc:  # e.g. no such device for this backend
            print(f"skipping xpnn-{name}: {type(exc).__name__}: {exc}")
    return cases


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads < 1:
        args.threads = None
    if args.threads is not None and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        # BLAS reads its thread count when NumPy is imported: start again with it set.
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(args.threads)))
        os.execv(sys.executable, [sys.executable, *sys.argv])
    if args.threads is not None and backend_info("torch").usable:
        importlib.import_module("torch").set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    began = time.perf_counter()
    print(machine_line(args.device))
    print(
        f"task: {BITS}-bit binary addition, {INPUT}-{HIDDEN}-{OUTPUT} RNN, sigmoid, squared "
        f"error, SGD lr {LR}; {args.dtype} (the notebook loop: float64); "
        f"{args.repeats} repeats of ~{args.seconds:g} s, interleaved\n"
    )
    cases = build_cases(args, batches)
    measure(cases, args.repeats, args.seconds)

    if not args.no_convergence:
        print("\n### wall time for xpnn-numpy to add all 16384 operand pairs exactly (seed 0)\n")
        print("| batch | lr | iterations | sequences | training s | checking s | result |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for batch, lr, slice_iters, max_iters in ((1, 0.1, 250, 30_000), (64, 2.0, 50, 3_000)):
            iters, train_s, eval_s, exact = time_to_exact(
                batch, lr, slice_iters, max_iters, args.dtype
            )
            result = "100 % exact" if iters else f"{exact}/16384 after {max_iters}"
            shown = iters or max_iters
            print(
                f"| {batch} | {lr:g} | {shown} | {shown * batch} | {train_s:.2f} | "
                f"{eval_s:.2f} | {result} |",
                flush=True,
            )
        print(
            "\n(checked every 250 iterations at batch 1 and every 50 at batch 64; "
            "'training s' excludes the checks)"
        )

    print_tables(cases, batches, args.dtype)
    print(f"\n(whole run: {time.perf_counter() - began:.0f} s)")
    print("\n" + machine_line(args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
