"""``xpnn sweep``: every configuration of a grid times every seed, one run a task on
dask.distributed, each row appended to a JSON-lines file as its run finishes.

A sweep's run is the very run ``xpnn train RUN`` makes: its command line is built from
RUN's options, the grid values and ``--seed``, and parsed by the train command's own
parser into the train command's settings and notebook function (``cli.RUNS``). The
results file starts with a header naming the sweep (RUN, its resolved options, the
grid); a rerun of the same sweep skips the runs already written, a different sweep is
refused. Every user error is found before a task is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xpnn.backends import backend_info, float_errors_ignored, install_hint
from xpnn.errors import TrainingDiverged, XpnnValueError, shown

CONNECT_TIMEOUT = 10
"""Seconds ``--scheduler ADDRESS`` waits for the scheduler before giving up."""

RESERVED = {
    "seed": "the seeds are 0 .. --seeds N - 1",
    "resume": "a sweep resumes from its --out file",
    "checkpoint": "sweep runs keep no checkpoints",
    "checkpoint-every": "sweep runs keep no checkpoints",
    "json": "the sweep writes JSON lines to --out",
    "quiet": "sweep runs are always quiet",
    "plot": "--plot is the sweep's picture",
}
"""Train options a sweep sets itself, and why they cannot be given."""


@dataclass(frozen=True)
class Sweep:
    """RUN, RUN's options outside the grid, the grid (option name to its values, as
    typed) and the number of seeds."""

    run: str
    options: tuple[str, ...]
    grid: dict[str, tuple[str, ...]]
    seeds: int

    def configs(self) -> list[dict[str, str]]:
        """Every combination of grid values, the first key varying slowest."""
        keys = list(self.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]

    def argv(self, config: dict[str, str], seed: int) -> list[str]:
        """The ``xpnn`` command line of one run."""
        grid_args = [arg for key, value in config.items() for arg in (f"--{key}", value)]
        return ["train", self.run, *self.options, *grid_args, "--seed", str(seed), "--quiet"]

    def tasks(self) -> list[tuple[dict[str, str], int]]:
        """Every ``(config, seed)`` pair, in a stable order."""
        return [(config, seed) for config in self.configs() for seed in range(self.seeds)]


def row_key(config: dict[str, str], seed: int) -> str:
    """The identity of one run in the results file."""
    return json.dumps([config, seed], sort_keys=True)


# -- the command line ------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser, runs: Sequence[str], plot_path: Callable) -> None:
    """The options of ``xpnn sweep`` (RUN's own options are collected as unknown ones)."""
    p.add_argument("run", choices=runs, metavar="RUN", help=f"a train command: {', '.join(runs)}")
    p.add_argument(
        "--grid",
        nargs="+",
        default=None,
        metavar="KEY=V1,V2",
        help="an option of RUN and its values; every combination is run (default: none; required)",
    )
    p.add_argument("--seeds", type=_count, default=1, help="seeds 0 .. N-1 per configuration")
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


def build_sweep(args: argparse.Namespace, options: Sequence[str]) -> Sweep:
    """The sweep the command line describes; every run's command line is parsed by the
    train parser here, so no bad value reaches a worker.

    Raises
    ------
    XpnnValueError
        An empty or malformed grid, an unknown or reserved key, a value RUN refuses, a
        backend that cannot run here.
    """
    if not args.grid:
        msg = "the grid is empty: give --grid KEY=V1,V2 (an option of RUN and its values)"
        raise XpnnValueError(msg)
    known = _run_options(args.run)
    grid: dict[str, tuple[str, ...]] = {}
    for item in args.grid:
        key, sep, values = item.partition("=")
        key = key.removeprefix("--")
        split = tuple(v.strip() for v in values.split(","))
        if not sep or not key or not all(split):
            msg = f"--grid takes KEY=V1,V2,... got {_short(item)}"
            raise XpnnValueError(msg)
        _check_key(key, args.run, known)
        if key in grid:
            msg = f"grid key {key!r} is given twice"
            raise XpnnValueError(msg)
        grid[key] = split
    given = {o.split("=")[0].removeprefix("--").replace("_", "-") for o in options}
    for key in sorted(given & set(RESERVED)):
        msg = f"--{key} cannot be given to a sweep: {RESERVED[key]}"
        raise XpnnValueError(msg)
    for key in sorted(given & set(grid)):
        msg = f"--{key} is both a grid key and a fixed option; give it once"
        raise XpnnValueError(msg)
    sweep = Sweep(args.run, tuple(options), grid, args.seeds)
    for config in sweep.configs():
        parsed = parse_run(sweep.argv(config, 0), config)
        info = backend_info(parsed.backend)
        if not info.usable:
            msg = f"configuration {_describe(config)}: {info.reason}"
            raise XpnnValueError(msg)
    return sweep


def _run_options(run: str) -> dict[str, argparse.Action]:
    """RUN's options by name (``hidden-size``), from the train parser."""
    from xpnn.cli import build_parser

    runs = _subparsers(build_parser())["train"]
    parser = _subparsers(runs)[run]
    return {
        s[2:]: action
        for action in parser._actions
        for s in action.option_strings
        if s.startswith("--") and s != "--help"
    }


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _check_key(key: str, run: str, known: dict[str, argparse.Action]) -> None:
    if key in RESERVED:
        msg = f"grid key {key!r} cannot be swept: {RESERVED[key]}"
        raise XpnnValueError(msg)
    if key not in known:
        names = ", ".join(k for k in known if k not in RESERVED)
        msg = f"unknown grid key {_short(key)} for {run}; its options are: {names}"
        raise XpnnValueError(msg)


def parse_run(argv: list[str], config: dict[str, str] | None = None) -> argparse.Namespace:
    """``argv`` parsed by the ``xpnn`` parser; its one-line complaint becomes an
    XpnnValueError naming the configuration."""
    from xpnn.cli import _check, build_parser

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
            _check(args)  # what the train command refuses beyond its parser
            return args
    except SystemExit:
        complaint = stderr.getvalue().strip().split("error: ", 1)[-1].split(" (see ")[0]
        where = f"configuration {_describe(config)}: " if config else ""
        msg = f"{where}{complaint}"
        raise XpnnValueError(msg) from None


def _describe(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


# -- one run, on a worker ------------------------------------------------------------------


def run_one(argv: list[str]) -> dict[str, Any]:
    """Run ``xpnn`` ``argv`` (a train command) and return its row: the final loss, the
    notebook's scalar measures, the first reading at which every answer was exact
    (binary addition), or the iteration where it diverged; wall time and worker."""
    from xpnn import cli

    args = parse_run(argv)
    kind, runner = cli.RUNS[args.run]
    settings = cli._settings(args, kind)
    probe = _ExactProbe(getattr(args, "bits", None)) if args.run == "binary-addition" else None
    began = time.perf_counter()
    row: dict[str, Any] = {"final_loss": None, "diverged_at": None, "first_exact": None}
    try:
        with float_errors_ignored():
            extra = {} if probe is None else {"on_reading": probe}
            result = runner(settings, echo=None, **extra)
    except TrainingDiverged as exc:
        row["diverged_at"] = exc.iteration
    else:
        row["final_loss"] = result.train.history[-1][1]
        row["metrics"] = {
            k: v
            for k, v in result.metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        }
        if probe is not None:
            exact, total = result.metrics["exact"], result.metrics["total"]
            row["first_exact"] = (
                probe.first if probe.first is not None else (args.iters if exact == total else None)
            )
    row["seconds"] = time.perf_counter() - began
    row["worker"] = _worker_name()
    return row


class _ExactProbe:
    """At each loss reading of a binary-addition run: once the reading's batch is all
    right, count every operand pair; remember the first reading with all of them exact."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.first: int | None = None

    def __call__(self, net: Any, event: Any) -> None:
        from xpnn.backends import to_numpy
        from xpnn.course.networks import addition_accuracy

        if self.first is not None:
            return
        y, d = to_numpy(event.y), to_numpy(event.d)
        if not ((y >= 0.5) == (d >= 0.5)).all():
            return
        exact, total = addition_accuracy(net, self.bits)
        if exact == total:
            self.first = event.iteration


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a dask worker
        return "local"


# -- the results file ----------------------------------------------------------------------


class ResultsFile:
    """A JSON-lines file: a header naming the sweep, then one line a finished run.

    Opening checks the header (a file of another sweep is refused) and drops a last line
    cut short by a killed sweep. ``append`` writes one whole line and flushes it to disk.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_dir() or not path.parent.is_dir():
            msg = f"cannot write the results file {str(path)!r}"
            raise XpnnValueError(msg)
        if path.exists() and path.stat().st_size > 0:
            self._read(identity)
        else:
            path.write_text(json.dumps({"xpnn_sweep": identity}) + "\n")

    def _read(self, identity: dict[str, Any]) -> None:
        text = self.path.read_text()
        complete = text[: text.rfind("\n") + 1]  # a line without its newline was cut short
        lines = complete.splitlines()
        try:
            header = json.loads(lines[0])["xpnn_sweep"] if lines else None
        except (json.JSONDecodeError, KeyError, TypeError):
            header = None
        if header is None:
            msg = f"{self.path} is not an xpnn sweep results file; choose another --out"
            raise XpnnValueError(msg)
        if header != identity:
            msg = (
                f"{self.path} holds the results of another sweep "
                f"({_difference(header, identity)}); choose another --out or remove the file"
            )
            raise XpnnValueError(msg)
        for line in lines[1:]:
            row = json.loads(line)
            self.rows[row_key(row["config"], row["seed"])] = row
        if len(complete) < len(text):
            with self.path.open("r+") as f:
                f.truncate(len(complete))

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` as one line, flushed to disk before returning."""
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows[row_key(row["config"], row["seed"])] = row


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """How the sweep of a results file differs from this one, in a few words."""
    if old.get("run") != new["run"]:
        return f"of {_short(str(old.get('run')))}, not {new['run']}"
    if old.get("grid") != new["grid"]:
        return f"its grid is {_short(json.dumps(old.get('grid')))}"
    theirs = old.get("options") or {}
    names = sorted(
        k for k in set(theirs) | set(new["options"]) if theirs.get(k) != new["options"].get(k)
    )
    ours = new["options"]
    text = "; ".join(f"{k} {theirs.get(k)} there, {ours.get(k)} here" for k in names)
    return f"its options differ: {text if len(text) <= 80 else text[:77] + '...'}"


def identity(sweep: Sweep) -> dict[str, Any]:
    """What names a sweep in its results file: RUN, every resolved option outside the
    grid (defaults included, so ``--iters 3000`` and ``--iters=3000`` agree) and the grid.
    The number of seeds is not part of it: a rerun with more seeds adds the new ones."""
    parsed = vars(parse_run(sweep.argv(sweep.configs()[0], 0)))
    skip = {"command", "run", "seed", "quiet", "json", "plot", "checkpoint", "checkpoint_every"}
    skip |= {key.replace("-", "_") for key in sweep.grid} | {"resume"}
    plain = (str, int, float, bool, type(None))  # not the parser the namespace carries
    options = {k: v for k, v in sorted(parsed.items()) if k not in skip and isinstance(v, plain)}
    return {
        "run": sweep.run,
        "options": options,
        "grid": {k: list(v) for k, v in sweep.grid.items()},
    }


# -- the cluster -----------------------------------------------------------------------------


def check_dask() -> None:
    """Raise XpnnValueError with the extra to install when dask.distributed is missing."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        msg = f"xpnn sweep needs dask.distributed ({exc}); install it with: {install_hint('dask')}"
        raise XpnnValueError(msg) from None


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A ``distributed.Client``: on the scheduler at ``scheduler`` (within
    ``CONNECT_TIMEOUT`` seconds), or on a local cluster of ``workers`` single-threaded
    worker processes (default: one a core) listening on 127.0.0.1 only, stopped on exit.

    Raises
    ------
    XpnnValueError
        The scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            msg = (
                f"cannot reach the dask scheduler at {_short(scheduler)} within "
                f"{CONNECT_TIMEOUT} s ({type(exc).__name__})"
            )
            raise XpnnValueError(msg) from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,  # not the cancelled-task warnings of a Ctrl-C
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


# -- running -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a sweep did this time: runs skipped (already in the file), finished, failed
    (with the first failure's message)."""

    skipped: int = 0
    finished: int = 0
    failed: int = 0
    first_failure: str = ""


def execute(
    sweep: Sweep, results: ResultsFile, client: Any, progress: Callable[[Outcome, int], None]
) -> Outcome:
    """Submit every run not yet in ``results``, one task each; append each row as its
    task finishes. A task whose worker dies is rerun by dask elsewhere; a run that raises
    is counted as failed and not written, so the next rerun tries it again."""
    from distributed import as_completed

    outcome = Outcome()
    tag = task_tag(sweep)
    pending = {}  # task key on the cluster -> (config, seed)
    for index, (config, seed) in enumerate(sweep.tasks()):
        if row_key(config, seed) in results.rows:
            outcome.skipped += 1
        else:
            pending[f"{tag}-{index}"] = (config, seed)
    futures = {
        client.submit(run_one, sweep.argv(config, seed), key=key, pure=False): (config, seed)
        for key, (config, seed) in pending.items()
    }
    progress(outcome, len(pending))
    for future in as_completed(futures):
        config, seed = futures.pop(future)
        try:
            row = future.result()
        except Exception as exc:  # the run's own error, or KilledWorker after retries
            outcome.failed += 1
            outcome.first_failure = outcome.first_failure or (
                f"{_describe(config)} seed {seed}: {type(exc).__name__}: {exc}"
            )
        else:
            results.append({"config": config, "seed": seed, **row})
            outcome.finished += 1
        progress(outcome, len(pending))
    return outcome


def task_tag(sweep: Sweep) -> str:
    """The prefix of this sweep's task keys on the cluster, ``xpnn-run-<hash>``; task
    ``i`` of ``sweep.tasks()`` is ``<prefix>-i``."""
    digest = hashlib.sha256(json.dumps(identity(sweep), sort_keys=True).encode()).hexdigest()
    return f"xpnn-run-{digest[:12]}"


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


def run_sweep(args: argparse.Namespace, options: Sequence[str]) -> int:
    """``xpnn sweep``: check everything, run what the results file lacks, print the
    summary, draw the picture. Returns 2 for bad input (nothing was sent), 1 when a run
    failed, else 0."""
    from xpnn import sweep_report

    try:
        check_dask()
        sweep = build_sweep(args, options)
        results = ResultsFile(args.out, identity(sweep))
        with _sigterm_interrupts(), connect(args.scheduler, args.workers) as client:
            where = (
                args.scheduler
                or f"a local cluster of {len(client.scheduler_info()['workers'])} workers"
            )
            total = len(sweep.tasks())
            print(
                f"xpnn sweep: {total} runs ({len(sweep.configs())} configuration(s) x "
                f"{sweep.seeds} seed(s)) on {where}; {len(results.rows)} already in {args.out}",
                file=sys.stderr,
            )
            outcome = execute(sweep, results, client, ProgressBar())
    except XpnnValueError as exc:
        print(f"xpnn sweep: error: {exc}", file=sys.stderr)
        return 2
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
