"""``xpnn agree``: the same seeded training runs on every usable backend, compared with
NumPy.

Each run trains a model from the same seed on the same batches with ``xpnn.training.train.train``
(``log_every=1``, so the loss of every step is recorded) and keeps the final parameters.
A backend's float64 runs are compared with NumPy's float64 runs and its float32 runs
with NumPy's float32 runs. For an array ``x`` against its reference ``ref``::

    abs = max|x - ref|        rel = max|x - ref| / max|ref|

with the whole loss trajectory taken as one array, and for the parameters the largest
``abs`` and ``rel`` over the parameter arrays (each scaled by its own ``max|ref|``). A row
passes when both ``rel`` are within the tolerance of its dtype (``TOLERANCES``).

This module is a driver, not model code: it may use NumPy on the host.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from xpnn import datasets
from xpnn.backend import (
    BACKENDS,
    backend_info,
    default_device,
    device_name,
    get_namespace,
    resolve_device,
    to_numpy,
)
from xpnn.course import notebooks
from xpnn.errors import BackendUnavailable, XpnnError
from xpnn.nn.mlp import MLP
from xpnn.optim import SGD, Momentum
from xpnn.training.train import train

HostArray = Any  # a numpy.ndarray, from xpnn.to_numpy or xpnn.datasets

REFERENCE = "numpy"
DTYPES = ("float64", "float32")
TOLERANCES = {"float64": 1e-9, "float32": 1e-4}  # on rel, for the losses and the params
EPS = {"float32": 2.0**-23, "float64": 2.0**-52}  # machine epsilon
ROUNDING_ULPS = 64  # a one-pass difference beyond this many eps is not reduction order
SEED = 0

RELATIVE = (
    "rel = max|x - ref| / max|ref| per array (the loss trajectory of every step is one "
    "array; params: the largest over the parameter arrays); abs = max|x - ref|"
)


# -- the runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One seeded training run: ``build(backend, device, dtype)`` returns the model, the
    optimiser and the data stream."""

    name: str
    steps: int
    build: Callable[[str, Any, str], tuple[Any, Any, Any]]
    truncate: int | None = None


def _regression(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """Notebook 1_3: 2-10-1, relu hidden, identity output, squared error, lr 0.07, batch 1."""
    net = notebooks.regression_network(seed=SEED, backend=backend, device=device, dtype=dtype)
    x, d = _linear_data()
    return net, SGD(0.07), datasets.SampleStream(x, d, 1, seed=SEED)


def _classifier(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """A 2-16-3 softmax classifier (tanh hidden, cross-entropy, He init) on three Gaussian
    blobs, momentum SGD (lr 0.1, momentum 0.9), batch 20."""
    net = MLP(
        [2, 16, 3],
        hidden="tanh",
        output="softmax",
        loss="cross_entropy",
        init="he",
        seed=SEED,
        backend=backend,
        device=device,
        dtype=dtype,
    )
    x, d = _blobs()
    return net, Momentum(0.1, 0.9), datasets.SampleStream(x, d, 20, seed=SEED)


def _addition(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """Notebook 3_1: a 2-16-1 sigmoid RNN on 8-bit binary addition, lr 0.1, batch 32."""
    net = notebooks.addition_network(seed=SEED, backend=backend, device=device, dtype=dtype)
    return net, SGD(0.1), datasets.BinaryAdditionStream(32, bits=8, seed=SEED)


_DATA: dict[str, tuple[HostArray, HostArray]] = {}


def _linear_data() -> tuple[HostArray, HostArray]:
    if "linear" not in _DATA:
        _DATA["linear"] = datasets.linear(10_000, seed=SEED)
    return _DATA["linear"]


def _blobs() -> tuple[HostArray, HostArray]:
    if "blobs" not in _DATA:
        _DATA["blobs"] = datasets.blobs(600, seed=SEED)
    return _DATA["blobs"]


RUNS: dict[str, Run] = {
    run.name: run
    for run in (
        Run("mlp-regression", 500, _regression),
        Run("mlp-softmax", 200, _classifier),
        Run("rnn-addition", 500, _addition),
        Run("rnn-addition-trunc3", 500, _addition, truncate=3),
    )
}


@dataclass
class Outcome:
    """The recorded result of one run: the loss of every step and the final params."""

    losses: HostArray
    params: dict[str, HostArray]
    seconds: float


def execute(run: Run, backend: str, device: Any, dtype: str) -> Outcome:
    """Train ``run`` on ``backend``/``device`` in ``dtype`` and bring the results home."""
    model, optimizer, stream = run.build(backend, device, dtype)
    began = time.perf_counter()
    result = train(model, optimizer, stream, iters=run.steps, log_every=1, truncate=run.truncate)
    seconds = time.perf_counter() - began
    losses = to_numpy([loss for _, loss in result.history])
    params = {k: to_numpy(v).astype("float64") for k, v in result.params.items()}
    return Outcome(losses, params, seconds)


# -- comparison -------------------------------------------------------------------------


def difference(x: HostArray, ref: HostArray) -> tuple[float, float]:
    """``(max|x - ref|, max|x - ref| / max|ref|)``; NaN where shapes differ or values are
    not finite (which never passes)."""
    if x.shape != ref.shape:
        return math.nan, math.nan
    err, scale = float(abs(x - ref).max()), float(abs(ref).max())
    if not (math.isfinite(err) and math.isfinite(scale)):  # a NaN or inf anywhere
        return math.nan, math.nan
    return err, (err / scale if scale > 0 else err)


@dataclass
class Row:
    """One line of the table (and one object of ``--json``)."""

    backend: str
    version: str
    device: str
    dtype: str
    run: str
    steps: int
    reference: str
    loss_abs: float = math.nan
    loss_rel: float = math.nan
    param_abs: float = math.nan
    param_rel: float = math.nan
    first_step_rel: float = math.nan  # rel of the step-0 loss alone: one forward pass
    tolerance: float = math.nan
    status: str = "FAIL"  # PASS, FAIL, ERROR or INFO (not judged)
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)


def compare(row: Row, got: Outcome, ref: Outcome, *, judged: bool = True) -> Row:
    """Fill ``row`` with the differences of ``got`` from ``ref``."""
    row.loss_abs, row.loss_rel = difference(got.losses, ref.losses)
    if got.losses.shape == ref.losses.shape and ref.losses[0] != 0:
        row.first_step_rel = abs(got.losses[0] - ref.losses[0]) / abs(ref.losses[0])
    diffs = [difference(got.params[k], ref.params[k]) for k in ref.params]
    row.param_abs = max(a for a, _ in diffs)
    row.param_rel = max(r for _, r in diffs)
    if any(math.isnan(v) for v in (*(a for a, _ in diffs), *(r for _, r in diffs))):
        row.param_abs = row.param_rel = math.nan
    row.seconds = got.seconds
    if not judged:
        row.status = "INFO"
        return row
    ok = row.loss_rel <= row.tolerance and row.param_rel <= row.tolerance  # NaN fails
    row.status = "PASS" if ok else "FAIL"
    return row


# -- backends and devices ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    backend: str
    device: Any
    version: str

    @property
    def device_label(self) -> str:
        return device_name(self.device)


def _probe(backend: str, device: str) -> Any:
    """The device object of ``backend`` called ``device``, after allocating an array on
    it; raise ``BackendUnavailable`` saying why not."""
    xp = get_namespace(backend)
    try:
        dev = resolve_device(xp, device)
        xp.zeros((1,), dtype=xp.float32, device=dev)
    except Exception as exc:  # no CUDA build, no driver, no such device
        msg = f"{backend} cannot use device {device!r} ({type(exc).__name__}: {exc})"
        raise BackendUnavailable(msg) from None
    return dev


def targets(names: Sequence[str], *, gpu: bool) -> tuple[list[Target], list[str]]:
    """The backend/device pairs to compare with the reference, and lines saying which
    backends were skipped and why. With ``gpu``, CuPy and PyTorch on ``cuda`` are
    required (``BackendUnavailable`` if either cannot run)."""
    found: list[Target] = []
    skipped: list[str] = []
    if gpu:
        if "cupy" not in names or "torch" not in names:
            raise BackendUnavailable("--gpu needs cupy and torch among --backends")
        info = backend_info("cupy")
        if not info.usable:
            raise BackendUnavailable(f"--gpu needs an NVIDIA GPU; {info.reason}")
    for name in names:
        info = backend_info(name)
        if not info.usable:
            if gpu and name in ("cupy", "torch"):
                raise BackendUnavailable(f"--gpu needs {name}: {info.reason}")
            skipped.append(f"skipped {name}: {info.reason}")
            continue
        version = info.version or "?"
        xp = get_namespace(name)
        devices = [default_device(xp)]
        if gpu and name == "torch":
            devices.append(_probe("torch", "cuda"))  # raises when torch has no GPU
        if gpu and name == "jax":
            try:
                devices.append(_probe("jax", "gpu"))
            except BackendUnavailable as exc:
                skipped.append(f"skipped jax on gpu: {exc}")
        seen: list[str] = []
        for dev in devices:
            if device_name(dev) in seen:
                continue
            seen.append(device_name(dev))
            if name == REFERENCE and device_name(dev) == "cpu":
                continue  # the reference itself
            found.append(Target(name, dev, version))
    return found, skipped


def _is_gpu(device: Any) -> bool:
    label = device_name(device).lower()
    return "cuda" in label or "gpu" in label


def explain(row: Row, target: Target) -> list[str]:
    """Why a row may miss (or has missed) its tolerance: the settings known to change
    float32 matmuls on a GPU, and where the difference starts."""
    notes = []
    if row.dtype == "float32" and _is_gpu(target.device):
        if target.backend == "torch":
            torch = sys.modules.get("torch")
            if torch is not None:
                tf32 = torch.backends.cuda.matmul.allow_tf32
                precision = torch.get_float32_matmul_precision()
                notes.append(
                    f"torch cuda float32 matmul: allow_tf32={tf32}, "
                    f"float32_matmul_precision={precision!r}"
                    + (" (TF32 products)" if tf32 or precision != "highest" else "")
                )
        elif target.backend == "cupy":
            notes.append(f"cupy: CUPY_TF32={os.environ.get('CUPY_TF32', '0')!r} (1 enables TF32)")
        elif target.backend == "jax":
            jax = sys.modules.get("jax")
            precision = None if jax is None else jax.config.jax_default_matmul_precision
            if str(precision).lower() in ("highest", "float32"):
                notes.append(f"jax gpu float32 matmul precision {precision!r}: full float32")
            else:
                notes.append(
                    f"jax gpu float32 matmul precision {precision!r}: XLA computes float32 "
                    "matmuls in TF32 (10-bit mantissa) on Ampere and later GPUs; "
                    "JAX_DEFAULT_MATMUL_PRECISION=highest computes them in full float32"
                )
    if row.status == "FAIL" and not math.isnan(row.first_step_rel):
        eps = EPS[row.dtype]
        ulps = row.first_step_rel / eps
        if ulps > ROUNDING_ULPS:
            notes.append(
                f"the first forward pass alone differs by rel {row.first_step_rel:.1e} "
                f"({ulps:.0f} x {row.dtype} eps): the arithmetic itself is less precise "
                "(a reduced-precision matmul such as TF32, or a transcendental "
                "implementation), not only rounding accumulated over the run"
            )
        else:
            notes.append(
                f"the first forward pass agrees to rounding (rel {row.first_step_rel:.1e}, "
                f"{ulps:.0f} x eps); the difference grows over the training steps "
                "(reduction order of matmul/sum, exp/tanh implementations)"
            )
    return notes


# -- the command ------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xpnn agree`` (shared by ``xpnn agree`` and ``main``)."""
    p.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma list of backends to compare with numpy (default: every usable one)",
    )
    p.add_argument(
        "--runs",
        default=",".join(RUNS),
        help=f"comma list of runs (default: all of {', '.join(RUNS)})",
    )
    p.add_argument(
        "--gpu",
        action="store_true",
        help="also run torch on cuda (and jax on gpu); fail unless cupy and torch can use a GPU",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON only")


def _split(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        msg = f"unknown {what} {given}; expected from {', '.join(known)}"
        raise XpnnError(msg)
    return names


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2e}"


def _table(rows: list[Row]) -> list[str]:
    head = (
        "backend",
        "version",
        "device",
        "dtype",
        "run",
        "steps",
        "loss abs",
        "loss rel",
        "param abs",
        "param rel",
        "tol",
        "result",
    )
    cells = [head] + [
        (
            r.backend,
            r.version,
            r.device,
            r.dtype + ("" if r.reference.endswith(r.dtype) else f" vs {r.reference}"),
            r.run,
            str(r.steps),
            _fmt(r.loss_abs),
            _fmt(r.loss_rel),
            _fmt(r.param_abs),
            _fmt(r.param_rel),
            "-" if math.isnan(r.tolerance) else f"{r.tolerance:.0e}",
            r.status + (f": {r.error}" if r.error else ""),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in cells
    ]


def _torch_threads(n: int | None) -> int | None:
    """Set PyTorch's intra-op CPU threads to ``n`` (if torch is loaded); return the old
    number. The arrays here are tiny: extra threads only spin against each other, and on a
    busy machine they make a run tens of times slower."""
    torch = sys.modules.get("torch")
    if torch is None or n is None:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    return old


def run_agree(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args``; print it; return the exit status."""
    names = _split(args.backends, BACKENDS, "backend")
    runs = [RUNS[n] for n in _split(args.runs, list(RUNS), "run")]
    say = (lambda *_: None) if args.json else print
    try:
        found, skipped = targets(names, gpu=args.gpu)
    except BackendUnavailable as exc:
        print(f"xpnn agree: error: {exc}", file=sys.stderr)
        return 1
    ref_version = backend_info(REFERENCE).version or "?"
    say(f"reference: {REFERENCE} {ref_version} on cpu, same dtype as the row (float64, float32)")
    tols = ", ".join(f"{dtype} {tol:.0e}" for dtype, tol in TOLERANCES.items())
    say(f"tolerance on rel: {tols}")
    say(RELATIVE)
    for line in skipped:
        say(line)
    if "torch" in sys.modules and any(t.backend == "torch" for t in found):
        say("torch runs with 1 CPU thread: the arrays are tiny, more threads only contend")
    say("")

    threads = _torch_threads(1)
    try:
        rows = _compare_all(runs, found, ref_version)
    finally:
        _torch_threads(threads)
    return _report(args, rows, skipped, ref_version)


def _compare_all(runs: list[Run], found: list[Target], ref_version: str) -> list[Row]:
    rows: list[Row] = []
    refs: dict[tuple[str, str], Outcome] = {}
    for run in runs:
        for dtype in DTYPES:
            refs[run.name, dtype] = execute(run, REFERENCE, None, dtype)
        info = Row(REFERENCE, ref_version, "cpu", "float32", run.name, run.steps, "float64")
        ref32, ref64 = refs[run.name, "float32"], refs[run.name, "float64"]
        rows.append(compare(info, ref32, ref64, judged=False))  # float32 rounding, for scale

    for target in found:
        for dtype in DTYPES:
            for run in runs:
                row = Row(
                    target.backend,
                    target.version,
                    target.device_label,
                    dtype,
                    run.name,
                    run.steps,
                    dtype,
                    tolerance=TOLERANCES[dtype],
                )
                try:
                    got = execute(run, target.backend, target.device, dtype)
                except (XpnnError, RuntimeError, TypeError, ValueError) as exc:
                    row.status, row.error = "ERROR", f"{type(exc).__name__}: {exc}"
                    rows.append(row)
                    continue
                compare(row, got, refs[run.name, dtype])
                row.notes = explain(row, target)
                rows.append(row)
    return rows


def _json_row(row: Row) -> dict[str, Any]:
    """``row`` as a JSON object, with ``null`` for NaN."""
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(row).items()
    }


def _report(args: argparse.Namespace, rows: list[Row], skipped: list[str], ref_version: str) -> int:
    failed = [r for r in rows if r.status in ("FAIL", "ERROR")]
    if args.json:
        print(
            json.dumps(
                {
                    "reference": f"{REFERENCE} {ref_version}",
                    "tolerances": TOLERANCES,
                    "relative": RELATIVE,
                    "skipped": skipped,
                    "rows": [_json_row(r) for r in rows],
                    "passed": not failed,
                },
                allow_nan=False,
            )
        )
        return 1 if failed else 0
    for line in _table(rows):
        print(line)
    notes = {}
    for r in rows:
        for note in r.notes:
            notes.setdefault(note, []).append(f"{r.backend}/{r.device}/{r.dtype}/{r.run}")
    for note, where in notes.items():
        print(f"note ({', '.join(where) if len(where) <= 3 else f'{len(where)} rows'}): {note}")
    print("")
    judged = [r for r in rows if r.status != "INFO"]
    if failed:
        print(f"{len(failed)} of {len(judged)} rows exceed their tolerance or failed to run")
        return 1
    print(f"all {len(judged)} rows within tolerance")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xpnn.agree``: the same as ``xpnn agree``."""
    parser = argparse.ArgumentParser(prog="xpnn agree", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_agree(args)
    except XpnnError as exc:
        print(f"xpnn agree: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
