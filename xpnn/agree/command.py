"""The ``xpnn agree`` command: its options, and the driver that runs every target
against the reference and reports."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from xpnn.agree.compare import RELATIVE, TOLERANCES, Row, compare
from xpnn.agree.diagnostics import explain
from xpnn.agree.report import report
from xpnn.agree.runs import DTYPES, LAZY_STEPS, REFERENCE, RUNS, Outcome, Run, execute
from xpnn.agree.targets import Target, targets
from xpnn.backend import BACKENDS, COMPILERS, backend_info, install_hint, set_cpu_threads
from xpnn.errors import BackendUnavailable, XpnnError

DESCRIPTION = "The same seeded training runs on every usable backend, compared with NumPy."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``xpnn agree``."""
    p.add_argument(
        "--backends",
        type=_names(BACKENDS, "backend"),
        default=",".join(BACKENDS),
        help="comma list of backends to compare with numpy (default: every usable one)",
    )
    p.add_argument(
        "--runs",
        type=_names(list(RUNS), "run"),
        default=",".join(RUNS),
        help=f"comma list of runs (default: all of {', '.join(RUNS)})",
    )
    p.add_argument(
        "--gpu",
        action="store_true",
        help="also run torch on cuda (and jax on gpu); fail unless cupy and torch can use a GPU",
    )
    p.add_argument(
        "--compiled",
        type=_names(list(COMPILERS), "compiling backend"),
        default="jax",
        help="comma list of backends whose compiled step also runs, against numpy and "
        "against the same backend's eager step (default: jax; torch.compile takes 10-40 s "
        "a shape)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON only")


def _names(known: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma list of names from ``known`` (exit 2 otherwise)."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            given = ", ".join(unknown) or "(none given)"
            msg = f"unknown {what} {given}; expected from {', '.join(known)}"
            raise argparse.ArgumentTypeError(msg)
        return names

    return parse


def run_agree(args: argparse.Namespace) -> int:
    """Run the comparison described by ``args``; print it; return the exit status."""
    runs = [RUNS[n] for n in args.runs]
    say = (lambda *_: None) if args.json else print
    try:
        found, skipped = targets(args.backends, gpu=args.gpu, compiled=args.compiled)
    except BackendUnavailable as exc:
        print(f"xpnn agree: error: {exc}", file=sys.stderr)
        return 1
    if not found:
        for line in skipped:
            say(line)
        print(f"xpnn agree: error: {_nothing_to_compare(args.backends)}", file=sys.stderr)
        return 1
    ref_version = backend_info(REFERENCE).version or "?"
    say(f"reference: {REFERENCE} {ref_version} on cpu, same dtype as the row (float64, float32)")
    tols = ", ".join(f"{dtype} {tol:.0e}" for dtype, tol in TOLERANCES.items())
    say(f"tolerance on rel: {tols}")
    say(RELATIVE)
    for line in skipped:
        say(line)
    threads = set_cpu_threads("torch", 1)
    if threads is not None and any(t.backend == "torch" for t in found):
        say("torch runs with 1 CPU thread: the arrays are tiny, more threads only contend")
    say("")
    try:
        rows = _compare_all(runs, found, ref_version)
    finally:
        set_cpu_threads("torch", threads)
    return report(rows, skipped, ref_version, as_json=args.json)


def _nothing_to_compare(names: Sequence[str]) -> str:
    others = [n for n in names if n != REFERENCE]
    if not others:
        return f"nothing was compared: --backends names only the reference, {REFERENCE}"
    return (
        f"nothing was compared: none of {', '.join(others)} can run here (see `xpnn "
        f"backends`); install one to compare with {REFERENCE}, e.g. "
        f"{install_hint('array_api_strict')}"
    )


def _compare_all(runs: list[Run], found: list[Target], ref_version: str) -> list[Row]:
    rows: list[Row] = []
    refs: dict[tuple[str, str, int], Outcome] = {}
    eager: dict[tuple[str, str, str, str], Outcome] = {}  # backend, device, run, dtype
    for run in runs:
        for dtype in DTYPES:
            refs[run.name, dtype, run.steps] = execute(run, REFERENCE, None, dtype)
        info = Row(REFERENCE, ref_version, "cpu", "float32", run.name, run.steps, "float64")
        ref32, ref64 = refs[run.name, "float32", run.steps], refs[run.name, "float64", run.steps]
        rows.append(compare(info, ref32, ref64, judged=False))  # float32 rounding, for scale

    for target in found:
        for dtype in DTYPES:
            for full in runs:
                run = full
                if target.backend in LAZY_STEPS:
                    run = replace(full, steps=min(full.steps, LAZY_STEPS[target.backend]))
                if (run.name, dtype, run.steps) not in refs:
                    refs[run.name, dtype, run.steps] = execute(run, REFERENCE, None, dtype)
                row = _row(target, dtype, run, dtype)
                try:
                    compile = "on" if target.compiled else "off"
                    got = execute(run, target.backend, target.device, dtype, compile=compile)
                except (XpnnError, RuntimeError, TypeError, ValueError) as exc:
                    row.status, row.error = "ERROR", f"{type(exc).__name__}: {exc}"
                    rows.append(row)
                    continue
                compare(row, got, refs[run.name, dtype, run.steps])
                row.notes = explain(row, target)
                rows.append(row)
                key = (target.backend, target.device_label, run.name, dtype)
                if not target.compiled:
                    eager[key] = got
                elif key in eager:  # the compiled step against the same backend's eager one
                    row = _row(target, dtype, run, f"{dtype} eager")
                    rows.append(compare(row, got, eager[key]))
    return rows


def _row(target: Target, dtype: str, run: Run, reference: str) -> Row:
    """An empty row of ``target`` running ``run`` in ``dtype`` against ``reference``."""
    return Row(
        target.label,
        target.version,
        target.device_label,
        dtype,
        run.name,
        run.steps,
        reference,
        tolerance=TOLERANCES[dtype],
    )
