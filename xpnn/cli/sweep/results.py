"""A sweep's results file: JSON lines, a header naming the sweep, then one row a finished
run; locked while a sweep writes it, and read back to skip what is done."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from pathlib import Path
from typing import Any

from xpnn.cli.sweep.grid import row_key, short
from xpnn.errors import OutputError, XpnnValueError, is_integer, is_real, shown
from xpnn.io.lock import FolderLock

ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "seed": (int,),
    "final_loss": (float, int, type(None)),
    "diverged_at": (int, type(None)),
    "first_exact": (int, type(None)),
    "metrics": (dict,),
    "curve": (list,),
    "seconds": (float, int),
    "worker": (str,),
}
"""The fields of a results row and the JSON types each may hold; ``metrics`` is absent
from a diverged run's row, ``curve`` (``[iteration, test MSE]`` pairs) from a run that
records none."""
OPTIONAL = ("metrics", "curve")


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def row_problem(row: object, grid: dict[str, list[str]]) -> str | None:
    """Why ``row`` (a parsed JSON line) is not a complete row of the sweep over ``grid``,
    in a few words; None when it is one: every field of ``ROW_FIELDS`` of its type (a
    bool is no number), the configuration one of the grid's, the seed non-negative,
    exactly one of ``final_loss`` and ``diverged_at`` set, ``metrics`` all numbers,
    ``curve`` pairs of an increasing iteration and a finite number."""
    if not isinstance(row, dict):
        return f"it is {_JSON_KINDS.get(type(row), 'a number')}, not an object"
    for name, kinds in ROW_FIELDS.items():
        if name not in row and name not in OPTIONAL:
            return f"it has no {name!r}"
        if name not in row:
            continue
        value = row[name]
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
    curve = row.get("curve", [])
    points = all(
        isinstance(p, list) and len(p) == 2 and is_integer(p[0]) and is_real(p[1]) for p in curve
    )
    if not points or any(a[0] >= b[0] for a, b in itertools.pairwise(curve)):
        return f"its curve {shown(curve)} is not [iteration, finite number] pairs, in order"
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
        return f"of {short(str(old.get('run')))}, not {new['run']}"
    if old.get("grid") != new["grid"]:
        return f"its grid is {short(json.dumps(old.get('grid')))}"
    theirs = old.get("options") or {}
    names = sorted(
        k for k in set(theirs) | set(new["options"]) if theirs.get(k) != new["options"].get(k)
    )
    ours = new["options"]
    text = "; ".join(f"{k} {theirs.get(k)} there, {ours.get(k)} here" for k in names)
    return f"its options differ: {text if len(text) <= 80 else text[:77] + '...'}"
