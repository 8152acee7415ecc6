"""``xpnn sweep``: every configuration of a grid times every seed, one run a task on
dask.distributed, each row appended to a JSON-lines file as its run finishes.

A sweep's run is the very run ``xpnn train RUN`` makes: RUN's settings class
(``xpnn.course.registry.RUNS``) takes RUN's other options, each grid key is checked once
against its fields and each value parsed once, and every worker gets its run's settings
object (``dataclasses.replace`` of those values and ``seed``). The results file starts
with a header naming the sweep (RUN, its resolved options, the grid); a rerun of the
same sweep skips the runs already written, a different sweep is refused. Every user
error, a sweep too large to finish included, is found before a task is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from xpnn.cli.sweep import report as sweep_report
from xpnn.cli.sweep.grid import MAX_RUNS, build_sweep, identity, row_key
from xpnn.cli.sweep.results import ResultsFile
from xpnn.cli.sweep.tasks import Outcome, execute
from xpnn.errors import OutputError, XpnnValueError, shown
from xpnn.parallel.cluster import CONNECT_TIMEOUT, check_dask, connect


def add_arguments(p: argparse.ArgumentParser, runs: Sequence[str], plot_path: Callable) -> None:
    """The options of ``xpnn sweep`` (RUN's own options are collected as unknown ones)."""
    p.add_argument("run", choices=runs, metavar="RUN", help=f"a train command: {', '.join(runs)}")
    p.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        default=None,
        metavar="KEY=V1,V2",
        help="an option of RUN and its distinct values; every combination is run; a second "
        "--grid adds its keys (default: none; required)",
    )
    p.add_argument(
        "--seeds",
        type=_count,
        default=1,
        help=f"seeds 0 .. N-1 per configuration (configurations x seeds at most {MAX_RUNS})",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_count, default=None, help="local cluster size (default: one a core)"
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help=f"an existing dask scheduler, e.g. tcp://HOST:8786 ({CONNECT_TIMEOUT} s to "
        "connect; default: a local cluster)",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="results, JSON lines (required)"
    )
    p.add_argument(
        "--plot",
        type=plot_path,
        default=None,
        metavar="FILE",
        help="a PNG of the summary (default: none)",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {shown(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class ProgressBar:
    """One line on stderr: runs done, failed, remaining and the estimated time left;
    redrawn in place on a terminal, a line every tenth of the sweep elsewhere."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.began = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = -1

    def __call__(self, outcome: Outcome, total: int) -> None:
        done = outcome.finished + outcome.failed
        remaining = total - done
        elapsed = time.perf_counter() - self.began
        eta = f"{elapsed / done * remaining:.0f} s" if done else "?"
        width = 30
        filled = width * done // max(total, 1)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {outcome.finished} done, "
            f"{outcome.failed} failed, {remaining} remaining, about {eta} left"
        )
        if self.tty:
            end = "\n" if remaining == 0 else ""
            print(f"\r{line}", end=end, file=self.stream, flush=True)
        elif 10 * done // max(total, 1) > self.shown or remaining == 0:
            self.shown = 10 * done // max(total, 1)
            print(line, file=self.stream, flush=True)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While it lasts, ``kill PID`` stops a sweep as Ctrl-C does: the local cluster is
    shut down on the way out, and the rows written so far stay for the rerun."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


REPORTED = 5
"""Ignored lines of a results file shown one a line; the rest are counted."""


def _report_ignored(results: ResultsFile) -> None:
    """One line on stderr for each of the first ``REPORTED`` lines of the results file
    that are not rows of this sweep, and one counting the rest."""
    for number, problem in results.ignored[:REPORTED]:
        print(
            f"xpnn sweep: warning: {results.path} line {number} is not a complete row of this "
            f"sweep ({problem}); ignored, its run runs again",
            file=sys.stderr,
        )
    if len(results.ignored) > REPORTED:
        more = len(results.ignored) - REPORTED
        print(f"xpnn sweep: warning: {more} more such lines ignored", file=sys.stderr)


def run_sweep(args: argparse.Namespace, options: Sequence[str]) -> int:
    """``xpnn sweep``: check everything, run what the results file lacks, print the
    summary, draw the picture. Returns 2 for bad input (nothing was sent; an --out that
    cannot be written or is locked by another sweep included), 1 when a run failed or a
    row could not be written, else 0."""

    try:
        check_dask()
        sweep = build_sweep(args, options)
        with ResultsFile(args.out, identity(sweep)) as results:
            _report_ignored(results)
            with _sigterm_interrupts(), connect(args.scheduler, args.workers) as client:
                where = (
                    args.scheduler
                    or f"a local cluster of {len(client.scheduler_info()['workers'])} workers"
                )
                total = len(sweep.tasks())
                print(
                    f"xpnn sweep: {total} runs ({len(sweep.configs())} configuration(s) x "
                    f"{sweep.seeds} seed(s)) on {where}; {len(results.rows)} already in "
                    f"{args.out}",
                    file=sys.stderr,
                )
                outcome = execute(sweep, results, client, ProgressBar())
    except XpnnValueError as exc:
        print(f"xpnn sweep: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"xpnn sweep: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"xpnn sweep: ran {outcome.finished}, skipped {outcome.skipped} already in "
        f"{args.out}, failed {outcome.failed}",
        file=sys.stderr,
    )
    rows = [results.rows[row_key(c, s)] for c, s in sweep.tasks() if row_key(c, s) in results.rows]
    summaries = sweep_report.summarize(sweep.configs(), rows)
    print(sweep_report.table(summaries, list(sweep.grid)))
    print(sweep_report.conclusion(summaries))
    if args.plot is not None:
        title = sweep_report.title(sweep.run, identity(sweep)["options"], sweep.seeds)
        sweep_report.figure(summaries, args.plot, title=title)
        print(f"wrote {args.plot}")
    if outcome.failed:
        print(
            f"xpnn sweep: {outcome.failed} runs failed (rerun the sweep to retry them); "
            f"first: {outcome.first_failure}",
            file=sys.stderr,
        )
        return 1
    return 0
