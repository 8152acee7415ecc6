"""How fast does xpnn train the course's binary-addition RNN?

One run measures microseconds per training sequence (one forward pass, full BPTT and an
SGD update; 8 bits, a 2-16-1 RNN, sigmoid hidden and output, squared error, lr 0.1) for

* ``xpnn-<backend>``: ``xpnn.training.loop.train`` on ``xpnn.datasets.BinaryAdditionStream``, the
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

both torch implementations (``_runners.py``) start from xpnn's initial weights, without
biases like xpnn's network. Then the wall time xpnn on NumPy needs to add all 16384
operand pairs exactly, and the tables. Speed is only measured here; no test asserts on it.

Timing (``_timing.py``): a warm-up call, calibrated runs of about ``--seconds``,
interleaved round-robin over the implementations so that the machine's noise hits all of
them alike; the table gives the median. NumPy's BLAS, torch and XLA run on one thread
unless ``--threads`` says otherwise: on a small shared machine two spinning
BLAS/OpenMP threads per process make the multi-threaded numbers swing by 10x and more.

Run it with ``python benchmarks/rnn_binary_addition.py`` (``--help`` for the options), or
``nox -s bench``. On a GPU machine: ``--device cuda`` (CuPy and CUDA PyTorch).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from _runners import JaxScanRNN, PoolLoop, TorchAutogradRNN, TorchModuleRNN, XpnnModel
from _timing import Case, machine_line, measure, pin_threads

import xpnn
from xpnn import datasets
from xpnn.backends import BACKENDS, COMPILERS, backend_info
from xpnn.course.networks import addition_accuracy
from xpnn.optim import SGD
from xpnn.training.loop import train

BITS, INPUT, HIDDEN, OUTPUT, LR = 8, 2, 16, 1, 0.1
NOTEBOOK, TORCH_AUTOGRAD, TORCH_RNN = "notebook loop", "torch autograd", "torch.nn.RNN"
JAX_SCAN = "jax value_and_grad (lax.scan, unroll 8) raw step"
TARGETS = (  # (batch, competitor, how many times faster the fastest xpnn path should be)
    (1, NOTEBOOK, 10.0),
    (1, TORCH_AUTOGRAD, 10.0),
    (1024, TORCH_RNN, 3.0),
)


# -- the implementations -----------------------------------------------------------------


class XpnnRunner:
    """``xpnn.train`` exactly as users call it (loss read every 100 iterations), the step
    eager or compiled. Successive calls continue one run (``resume_from``), so a compiled
    step is compiled once, in the warm-up."""

    def __init__(self, backend: str, batch: int, device: Any, dtype: str, compile: str) -> None:
        device = None if backend in ("numpy", "array_api_strict") else device
        self.net = xpnn.RNN(
            INPUT, HIDDEN, OUTPUT, seed=0, backend=backend, device=device, dtype=dtype
        )
        self.stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)
        self.opt, self.compile, self.run = SGD(LR), compile, None
        self.first_call = None  # seconds of the first step (the compile included)

    def __call__(self, iters: int) -> None:
        stop = (0 if self.run is None else self.run.step) + iters
        self.run = train(
            self.net,
            self.opt,
            self.stream,
            iters=stop,
            resume_from=self.run,
            log_every=100,
            compile=self.compile,
        )
        if self.first_call is None:
            self.first_call = self.run.stats.compile_seconds
        xpnn.to_numpy(self.net.params["W_out"])  # sync: the last update has finished


def _device_batches(batch: int) -> list[tuple[Any, Any]]:
    """The stream's first ``CHUNK`` iterations as host batches."""
    xs, ds = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0).batches(0, datasets.CHUNK)
    return [
        (xs[:, j * batch : (j + 1) * batch], ds[:, j * batch : (j + 1) * batch])
        for j in range(datasets.CHUNK)
    ]


def raw_step_runner(backend: str, batch: int, device: Any, dtype: str) -> PoolLoop:
    """``make_step``'s compiled step called once per iteration from a bare Python loop,
    on batches already on the device."""
    device = None if backend in ("numpy", "array_api_strict") else device
    net = xpnn.RNN(INPUT, HIDDEN, OUTPUT, seed=0, backend=backend, device=device, dtype=dtype)
    return PoolLoop(XpnnModel(net, SGD(LR), "on"), _device_batches(batch))


def jax_scan_runner(batch: int, dtype: str) -> PoolLoop:
    """The same network in idiomatic JAX (``_runners.JaxScanRNN``), from xpnn's initial
    weights, called once per iteration like the raw step."""
    init = {k: xpnn.to_numpy(v) for k, v in xpnn.RNN(INPUT, HIDDEN, OUTPUT, seed=0).params.items()}
    return PoolLoop(JaxScanRNN(init, LR, dtype), _device_batches(batch))


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


class TorchStreamRunner:
    """A torch implementation (``_runners``) trained on the binary-addition stream with the
    same initial weights as xpnn (no biases); data moves to the device 128 iterations at
    a time, as in ``train``."""

    def __init__(self, model: TorchAutogradRNN | TorchModuleRNN, batch: int) -> None:
        self.model, self.batch = model, batch
        self.stream = datasets.BinaryAdditionStream(batch, bits=BITS, seed=0)

    def __call__(self, iters: int) -> None:
        b, loss = self.batch, None
        for lo in range(0, iters, datasets.CHUNK):
            hi = min(iters, lo + datasets.CHUNK)
            xs_all, ds_all = (self.model.to_device(a) for a in self.stream.batches(lo, hi))
            for j in range(hi - lo):
                xs, ds = xs_all[:, j * b : (j + 1) * b], ds_all[:, j * b : (j + 1) * b]
                loss = self.model.step(xs, ds)
        float(loss)  # sync


def torch_runners(batch: int, device: str | None, dtype: str) -> list[Case]:
    """The torch autograd cell (sigmoid, as xpnn's) and ``torch.nn.RNN`` (tanh)."""
    init = {k: xpnn.to_numpy(v) for k, v in xpnn.RNN(INPUT, HIDDEN, OUTPUT, seed=0).params.items()}
    autograd = TorchAutogradRNN(init, "sigmoid", LR, device, dtype)
    module = TorchModuleRNN(init, LR, device, dtype)
    return [
        Case(TORCH_AUTOGRAD, batch, TorchStreamRunner(autograd, batch)),
        Case(TORCH_RNN, batch, TorchStreamRunner(module, batch)),
    ]


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
    exact, run = 0, None
    for stop in range(slice_iters, max_iters + 1, slice_iters):
        began = time.perf_counter()
        run = train(net, opt, stream, iters=stop, resume_from=run, log_every=100)
        middle = time.perf_counter()
        exact, total = addition_accuracy(net, BITS)
        eval_s += time.perf_counter() - middle
        train_s += middle - began
        if exact == total:
            return stop, train_s, eval_s, exact
    return None, train_s, eval_s, exact


# -- reporting ---------------------------------------------------------------------------


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
    for batch in batches:  # hand-written BPTT against autodiff, the same loop around each
        raw = by.get(("xpnn-jax (jax.jit) raw step", batch))
        row(f"batch {batch}: xpnn's BPTT vs jax autodiff", raw, by.get((JAX_SCAN, batch)), 1.0)
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
            for b in batches:
                cases += torch_runners(b, args.device, args.dtype)
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
                    Case(f"{label} raw step", b, raw_step_runner(name, b, args.device, args.dtype))
                    for b in batches
                ]
                if name == "jax" and not args.no_baselines:
                    cases += [Case(JAX_SCAN, b, jax_scan_runner(b, args.dtype)) for b in batches]
        except Exception as exc:  # e.g. no such device for this backend
            print(f"skipping xpnn-{name}: {type(exc).__name__}: {exc}")
    return cases


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads if args.threads >= 1 else None)
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
