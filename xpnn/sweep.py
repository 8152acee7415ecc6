"""``xpnn sweep``: every configuration of a grid times every seed, one run a task on
dask.distributed, each row appended to a JSON-lines file as its run finishes.

A sweep's run is the very run ``xpnn train RUN`` makes: RUN's settings class
(``xpnn.runs.registry.RUNS``) takes RUN's other options, each grid key is checked once
against its fields and each value parsed once, and every worker gets its run's settings
object (``dataclasses.replace`` of those values and ``seed``). The results file starts
with a header naming the sweep (RUN, its resolved options, the grid); a rerun of the
same sweep skips the runs already written, a different sweep is refused. Every user
error, a sweep too large to finish included, is found before a task is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
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

from xpnn import sweep_report
from xpnn.backends import backend_info, float_errors_ignored
from xpnn.errors import OutputError, TrainingDiverged, XpnnValueError, shown
from xpnn.io.lock import FolderLock
from xpnn.parallel.cluster import CONNECT_TIMEOUT, check_dask, connect
from xpnn.runs.fields import Spec, flag_label
from xpnn.runs.options import command_line, parse_options
from xpnn.runs.registry import RUNS, check_placement

MAX_RUNS = 100_000
"""The most runs (configurations x seeds) one sweep takes. The client holds a task for
each at once, and 100,000 runs of a second are about 2 hours on 16 workers; a larger
sweep is refused from its sizes alone, before anything is made: split it."""

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
    """RUN, RUN's settings outside the grid (``base``), the grid (option name, such as
    ``hidden-size``, to its values: each as typed, to the value it stands for) and the
    number of seeds."""

    run: str
    base: Any
    grid: dict[str, dict[str, Any]]
    seeds: int

    def configs(self) -> list[dict[str, str]]:
        """Every combination of grid values as typed, the first key varying slowest."""
        keys = list(self.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]

    def settings(self, config: dict[str, str], seed: int) -> Any:
        """The settings of one run: ``base`` with ``config``'s values and ``seed``."""
        values = {key.replace("-", "_"): self.grid[key][text] for key, text in config.items()}
        return dataclasses.replace(self.base, seed=seed, **values)

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


def build_sweep(args: argparse.Namespace, options: Sequence[str]) -> Sweep:
    """The sweep the command line describes: each grid key checked against RUN's
    fields, the size checked before any value is parsed, each value parsed once, then
    the configurations that can fail checked (``_check_configs``), so no bad value
    reaches a worker.

    Raises
    ------
    XpnnValueError
        An empty or malformed grid, an unknown, reserved or repeated key, a repeated
        value, a value RUN refuses, more than ``MAX_RUNS`` runs, a backend that cannot
        run here.
    """
    if not args.grid:
        msg = "the grid is empty: give --grid KEY=V1,V2 (an option of RUN and its values)"
        raise XpnnValueError(msg)
    kind = RUNS[args.run].settings
    known = command_line(kind)
    items: dict[str, str] = {}
    for item in args.grid:
        key, sep, _ = item.partition("=")
        key = key.removeprefix("--")
        if not item.isprintable():
            msg = f"--grid {_short(item)} holds a newline or another control character"
            raise XpnnValueError(msg)
        if not sep or not key:
            msg = f"--grid takes KEY=V1,V2,... got {_short(item)}"
            raise XpnnValueError(msg)
        _check_key(key, args.run, known)
        if key in items:
            msg = f"grid key {key!r} is given twice"
            raise XpnnValueError(msg)
        items[key] = item
    given = {o.split("=")[0].removeprefix("--").replace("_", "-") for o in options}
    for key in sorted(given & set(RESERVED)):
        msg = f"--{key} cannot be given to a sweep: {RESERVED[key]}"
        raise XpnnValueError(msg)
    for key in sorted(given & set(items)):
        msg = f"--{key} is both a grid key and a fixed option; give it once"
        raise XpnnValueError(msg)
    configs = math.prod(item.count(",") + 1 for item in items.values())
    if configs * args.seeds > MAX_RUNS:
        msg = (
            f"the sweep has {configs * args.seeds} runs ({configs} configuration(s) x "
            f"{args.seeds} seed(s)); one sweep takes at most {MAX_RUNS}: split it"
        )
        raise XpnnValueError(msg)
    grid = {key: _values(key, item, known[key]) for key, item in items.items()}
    sweep = Sweep(args.run, parse_options(kind, options), grid, args.seeds)
    _check_configs(sweep)
    return sweep


def _check_key(key: str, run: str, known: dict[str, Spec]) -> None:
    if key in RESERVED:
        msg = f"grid key {key!r} cannot be swept: {RESERVED[key]}"
        raise XpnnValueError(msg)
    if key not in known:
        names = ", ".join(k for k in known if k not in RESERVED)
        msg = f"unknown grid key {_short(key)} for {run}; its options are: {names}"
        raise XpnnValueError(msg)


def _values(key: str, item: str, spec: Spec) -> dict[str, Any]:
    """The values of ``item`` (``KEY=V1,V2``) as typed, each to the value it stands for;
    a value given twice, even as other text (``0.1,0.10``), is refused."""
    values: dict[str, Any] = {}
    seen: dict[Any, str] = {}
    for text in (v.strip() for v in item.partition("=")[2].split(",")):
        if not text:
            msg = f"--grid takes KEY=V1,V2,... got {_short(item)}"
            raise XpnnValueError(msg)
        try:
            value = spec.parse(text)
        except XpnnValueError as exc:
            msg = f"grid value {key}={text}: argument --{key}: {exc}"
            raise XpnnValueError(msg) from None
        if value in seen:
            again = "twice" if seen[value] == text else f"twice (as {seen[value]!r})"
            msg = f"grid key {key!r} lists the value {text!r} {again}; give each value once"
            raise XpnnValueError(msg)
        seen[value], values[text] = text, value
    return values


def _check_configs(sweep: Sweep) -> None:
    """Check the configurations that can fail, not all of them: the grid keys fall into
    groups that RUN's settings judge together (``RELATIONS``); each group's every
    combination is checked with the other keys at their first value, so each check is of
    a real configuration and every value and every related combination is seen (a
    1000 x 100 grid of unrelated keys is 1100 checks). Each distinct backend, device and
    dtype is also checked on its backend: usable here, the device the backend's, the
    dtype one it holds."""
    label = flag_label(type(sweep.base))
    first = {key: next(iter(values)) for key, values in sweep.grid.items()}
    placed: set[tuple[str, str, str]] = set()
    for keys in _groups(sweep):
        for values in itertools.product(*(sweep.grid[key] for key in keys)):
            config = {**first, **dict(zip(keys, values, strict=True))}
            settings = sweep.settings(config, 0)
            where = (settings.backend, repr(settings.device), settings.dtype)
            try:
                settings.check(label)
                if where not in placed:
                    placed.add(where)
                    _check_placement(settings)
            except XpnnValueError as exc:
                msg = f"configuration {_describe(config)}: {exc}"
                raise XpnnValueError(msg) from None


def _groups(sweep: Sweep) -> list[list[str]]:
    """The grid keys, grouped where RUN's ``RELATIONS`` tie them, in grid order."""
    groups = [{key} for key in sweep.grid]
    for related in type(sweep.base).RELATIONS:
        tied = [g for g in groups if any(key.replace("-", "_") in related for key in g)]
        if len(tied) > 1:
            groups = [g for g in groups if g not in tied] + [set().union(*tied)]
    return [[key for key in sweep.grid if key in group] for group in groups]


def _check_placement(settings: Any) -> None:
    info = backend_info(settings.backend)
    if not info.usable:
        raise XpnnValueError(info.reason)
    check_placement(settings)


def _describe(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


# -- one run, on a worker ------------------------------------------------------------------


def run_one(settings: Any) -> dict[str, Any]:
    """Run the run of ``settings`` (``RUN`` names it) and return its row: the final loss,
    the notebook's scalar measures, the first reading at which every answer was exact
    (binary addition), or the iteration where it diverged; wall time and worker."""
    probe = _ExactProbe(settings.bits) if settings.RUN == "binary-addition" else None
    began = time.perf_counter()
    row: dict[str, Any] = {"final_loss": None, "diverged_at": None, "first_exact": None}
    try:
        with float_errors_ignored():
            extra = {} if probe is None else {"on_reading": probe}
            result = RUNS[settings.RUN].run(settings, echo=None, progress=False, **extra)
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
                probe.first
                if probe.first is not None
                else (settings.iters if exact == total else None)
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


ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "seed": (int,),
    "final_loss": (float, int, type(None)),
    "diverged_at": (int, type(None)),
    "first_exact": (int, type(None)),
    "metrics": (dict,),
    "seconds": (float, int),
    "worker": (str,),
}
"""The fields of a results row and the JSON types each may hold; ``metrics`` is absent
from a diverged run's row."""


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def row_problem(row: object, grid: dict[str, list[str]]) -> str | None:
    """Why ``row`` (a parsed JSON line) is not a complete row of the sweep over ``grid``,
    in a few words; None when it is one: every field of ``ROW_FIELDS`` of its type (a
    bool is no number), the configuration one of the grid's, the seed non-negative,
    exactly one of ``final_loss`` and ``diverged_at`` set, ``metrics`` all numbers."""
    if not isinstance(row, dict):
        return f"it is {_JSON_KINDS.get(type(row), 'a number')}, not an object"
    for name, kinds in ROW_FIELDS.items():
        if name not in row and name != "metrics":
            return f"it has no {name!r}"
        value = row.get(name, {})
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"its {name!r} is {shown(value)}"
    config, metrics = row["config"], row.get("metrics", {})
    if set(config) != set(grid) or any(config[k] not in grid[k] for k in grid):
        return f"its config {shown(config)} is not a configuration of this sweep's grid"
    if row["seed"] < 0:
        return f"its seed is {row['seed']}"
    if (row["final_loss"] is None) == (row["diverged_at"] is None):
        return "it needs exactly one of 'final_loss' and 'diverged_at' set"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in metrics.values()):
        return f"its metrics {shown(metrics)} are not all numbers"
    if "exact" in metrics and not metrics.get("total", 0) > 0:
        return "its metrics have 'exact' without a positive 'total'"
    return None


def _header(line: bytes) -> dict[str, Any] | None:
    """The sweep a results file's first line names, or None when it names none: RUN a
    string, its options an object, its grid an object of lists of strings."""
    with contextlib.suppress(ValueError, RecursionError):  # not UTF-8, not JSON, too deep
        header = json.loads(line)
        header = header.get("xpnn_sweep") if isinstance(header, dict) else None
        if (
            isinstance(header, dict)
            and isinstance(header.get("run"), str)
            and isinstance(header.get("options"), dict)
            and isinstance(grid := header.get("grid"), dict)
            and all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in grid.values()
            )
        ):
            return header
    return None


class SweepLock(FolderLock):
    """The lock of a results file ``FILE``: ``FILE.lock`` beside it, held while a sweep
    reads and writes ``FILE``, taken and recovered as ``FolderLock`` takes a checkpoint
    folder's."""

    HOLDER = "sweep"
    ELSEWHERE = "choose another --out"

    def __init__(self, results: Path) -> None:
        super().__init__(results.parent)
        self.path = results.with_name(f"{results.name}.lock")
        self.subject = results


class ResultsFile:
    """A JSON-lines file: a header naming the sweep, then one line a finished run; use
    it as a context manager (or ``close`` it) to release its lock.

    Opening opens ``path`` for appending (creating it), takes its ``SweepLock`` (a second
    sweep on the same file is refused), checks the header (a file of another sweep is
    refused) and reads the rows. A line that is not a complete row of this sweep (see
    ``row_problem``) is ignored and listed in ``ignored`` as ``(line number, why)``, so
    its run runs again; a last line cut short by a killed sweep is dropped. ``append``
    writes one whole line and flushes it to disk.

    Raises
    ------
    XpnnValueError
        On opening: ``path`` cannot be written, is locked by another sweep, or holds
        another sweep's results (or no sweep's).
    OutputError
        From ``append``: the row cannot be written (a full disk); the rows written
        before it stay.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.ignored: list[tuple[int, str]] = []
        try:
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            msg = f"cannot write the results file {str(path)!r}: {exc.strerror or exc}"
            raise XpnnValueError(msg) from None
        self._lock = SweepLock(path)
        try:
            self._lock.acquire()
            self._read(identity)
        except BaseException:
            self.close()
            raise

    def _read(self, identity: dict[str, Any]) -> None:
        data = self.path.read_bytes()
        first = json.dumps({"xpnn_sweep": identity}).encode() + b"\n"
        if data != first and first.startswith(data):  # empty, or our header cut short
            self._rewrite(0, first)
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line without its newline was cut short
        lines = complete.split(b"\n")[:-1]
        header = _header(lines[0]) if lines else None
        if header is None:
            msg = f"{self.path} is not an xpnn sweep results file; choose another --out"
            raise XpnnValueError(msg)
        if header != identity:
            msg = (
                f"{self.path} holds the results of another sweep "
                f"({_difference(header, identity)}); choose another --out or remove the file"
            )
            raise XpnnValueError(msg)
        for number, line in enumerate(lines[1:], start=2):
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep
                problem = "it is not JSON"
            else:
                problem = row_problem(row, identity["grid"])
            key = None if problem else row_key(row["config"], row["seed"])
            if key in self.rows:
                problem = "it repeats an earlier row's run"
            if problem:
                self.ignored.append((number, problem))
            else:
                self.rows[key] = row
        if len(complete) < len(data):
            self._rewrite(len(complete), b"")

    def _rewrite(self, size: int, tail: bytes) -> None:
        """Cut the file to ``size`` bytes and append ``tail``, before any task is sent."""
        try:
            os.ftruncate(self._file.fileno(), size)
            self._write(tail)
        except OSError as exc:
            msg = f"cannot write the results file {str(self.path)!r}: {exc.strerror or exc}"
            raise XpnnValueError(msg) from None

    def _write(self, data: bytes) -> None:
        """Append ``data`` and flush it to disk; on failure, cut back what was written."""
        end = os.fstat(self._file.fileno()).st_size
        view = memoryview(data)
        try:
            while view:  # a raw write may take only a part
                view = view[self._file.write(view) :]
            os.fsync(self._file.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), end)
            raise

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` as one line, flushed to disk before returning."""
        try:
            self._write((json.dumps(row) + "\n").encode())
        except OSError as exc:
            msg = (
                f"cannot write to the results file {str(self.path)!r}: {exc.strerror or exc}; "
                "the sweep stops, the rows written so far stay (rerun it to finish)"
            )
            raise OutputError(msg) from None
        self.rows[row_key(row["config"], row["seed"])] = row

    def close(self) -> None:
        """Close the file and release its lock."""
        self._file.close()
        self._lock.release()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    """What names a sweep in its results file: RUN, every option outside the grid
    (defaults included, so ``--iters 3000`` and ``--iters=3000`` agree) and the grid.
    The number of seeds is not part of it: a rerun with more seeds adds the new ones."""
    skip = {"seed", "checkpoint", "checkpoint_every", "resume"}
    skip |= {key.replace("-", "_") for key in sweep.grid}
    names = sorted(s.name for s in command_line(type(sweep.base)).values())
    return {
        "run": sweep.run,
        "options": {name: getattr(sweep.base, name) for name in names if name not in skip},
        "grid": {k: list(v) for k, v in sweep.grid.items()},
    }


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
        client.submit(run_one, sweep.settings(config, seed), key=key, pure=False): (config, seed)
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
