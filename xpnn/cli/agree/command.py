"""The ``xpnn agree`` command: its options, and the driver that runs every target
against the reference and reports."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from xpnn.backends import (
    BACKENDS,
    COMPILERS,
    backend_info,
    get_backend,
    install_hint,
    set_cpu_threads,
)
from xpnn.cli.agree.compare import RELATIVE, TOLERANCES, Row, compare
from xpnn.cli.agree.diagnostics import explain
from xpnn.cli.agree.report import report
from xpnn.cli.agree.runs import DTYPES, LAZY_STEPS, REFERENCE, RUNS, Outcome, Run, execute
from xpnn.cli.agree.targets import Target, targets
from xpnn.errors import BackendUnavailable, XpnnError, shown

MAX_JOBS = 64
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
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="runs at once, each in a process of its own (default 1: one after another, "
        "in this process); the rows are the same, only sooner",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="every run on every backend in both dtypes (default: a covering set, in which "
        "every backend meets both dtypes and every run, every cell among them, runs once)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON only")


def _jobs(text: str) -> int:
    """An argparse type: a whole number from 1 to 64 (exit 2 otherwise)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_JOBS:
        msg = f"must be a whole number from 1 to {MAX_JOBS}, got {shown(text)}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


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
        rows = _compare_all(runs, found, ref_version, args.jobs, full=args.full)
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


@dataclass(frozen=True)
class Job:
    """One training run to execute: picklable, so that a worker process can run it."""

    run: str
    steps: int
    backend: str
    device: str | None  # a device name (``cpu:0``), or None for the backend's default
    dtype: str
    compile: str = "off"


def _execute(job: Job) -> Outcome | str:
    """``job``'s outcome, or what went wrong as one line."""
    run = replace(RUNS[job.run], steps=job.steps)
    try:
        return execute(run, job.backend, job.device, job.dtype, compile=job.compile)
    except (XpnnError, RuntimeError, TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _execute_all(jobs: list[Job], workers: int) -> dict[Job, Outcome | str]:
    """Every job's outcome: in this process, or spread over ``workers`` fresh processes
    (each with torch on one thread, as here)."""
    if workers == 1:
        return {job: _execute(job) for job in jobs}
    context = multiprocessing.get_context("spawn")  # no forked copies of loaded libraries
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=set_cpu_threads, initargs=("torch", 1)
    ) as pool:
        return dict(zip(jobs, pool.map(_execute, jobs), strict=True))


def covering(runs: list[Run], found: list[Target], *, full: bool) -> list[tuple[Target, str, Run]]:
    """The ``(target, dtype, run)`` rows to compute: every combination (``full``), or a
    covering set: the eager targets take the runs in turn, one a dtype (so every backend
    meets both dtypes and every run, each cell among them, is met at least once when
    there are enough rows), and a compiled target takes its eager twin's, so that it is
    also compared with the eager step."""
    if full:
        return [(t, dtype, run) for t in found for dtype in DTYPES for run in runs]
    chosen: dict[tuple[str, str, str], Run] = {}  # (backend, device, dtype) -> run
    turn = 0
    for target in (t for t in found if not t.compiled):
        for dtype in DTYPES:
            chosen[(target.backend, target.device_label, dtype)] = runs[turn % len(runs)]
            turn += 1
    rows = []
    for target in found:
        for dtype in DTYPES:
            run = chosen.get((target.backend, target.device_label, dtype))
            if run is None:  # a compiled target without its eager twin: in turn, too
                run, turn = runs[turn % len(runs)], turn + 1
            rows.append((target, dtype, run))
    return rows


def _compare_all(
    runs: list[Run], found: list[Target], ref_version: str, workers: int = 1, full: bool = True
) -> list[Row]:
    planned: list[tuple[Target, str, Job]] = []
    for target, dtype, run in covering(runs, found, full=full):
        lazy = get_backend(target.backend).lazy
        steps = min(run.steps, LAZY_STEPS) if lazy else run.steps
        compile = "on" if target.compiled else "off"
        job = Job(run.name, steps, target.backend, target.device_label, dtype, compile)
        planned.append((target, dtype, job))
    references = list(  # every run's full length, and the shorter runs of lazy backends
        dict.fromkeys(
            [Job(run.name, run.steps, REFERENCE, None, d) for run in runs for d in DTYPES]
            + [Job(job.run, job.steps, REFERENCE, None, job.dtype) for _, _, job in planned]
        )
    )
    outcomes = _execute_all([*references, *(job for _, _, job in planned)], workers)
    for job in references:
        if isinstance(outcomes[job], str):
            msg = f"the {REFERENCE} reference run {job.run} ({job.dtype}) failed: {outcomes[job]}"
            raise XpnnError(msg)

    def reference(job: Job) -> Outcome:
        return outcomes[Job(job.run, job.steps, REFERENCE, None, job.dtype)]

    rows: list[Row] = []
    for run in runs:
        ref32 = outcomes[Job(run.name, run.steps, REFERENCE, None, "float32")]
        ref64 = outcomes[Job(run.name, run.steps, REFERENCE, None, "float64")]
        info = Row(REFERENCE, ref_version, "cpu", "float32", run.name, run.steps, "float64")
        rows.append(compare(info, ref32, ref64, judged=False))  # float32 rounding, for scale

    eager: dict[tuple[str, str, str, str], Outcome] = {}  # backend, device, run, dtype
    for target, dtype, job in planned:
        row = _row(target, dtype, job, dtype)
        got = outcomes[job]
        if isinstance(got, str):
            row.status, row.error = "ERROR", got
            rows.append(row)
            continue
        compare(row, got, reference(job))
        row.notes = explain(row, target)
        rows.append(row)
        key = (target.backend, target.device_label, job.run, dtype)
        if not target.compiled:
            eager[key] = got
        elif key in eager:  # the compiled step against the same backend's eager one
            rows.append(compare(_row(target, dtype, job, f"{dtype} eager"), got, eager[key]))
    return rows


def _row(target: Target, dtype: str, job: Job, reference: str) -> Row:
    """An empty row of ``target`` running ``job`` in ``dtype`` against ``reference``."""
    return Row(
        target.label,
        target.version,
        target.device_label,
        dtype,
        job.run,
        job.steps,
        reference,
        tolerance=TOLERANCES[dtype],
    )
