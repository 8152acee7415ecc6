"""The sweep's results file: a line that is not a complete row of the sweep is reported
and its run runs again; a header of the wrong shape is refused; ``--out`` is opened
before any task is sent, a write error stops the sweep with one line and keeps the rows
written; one sweep a file at a time (``FILE.lock``)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
from pathlib import Path

import pytest

from xpnn import cli
from xpnn.cli.sweep import command, tasks
from xpnn.cli.sweep import results as sweep_results
from xpnn.cli.sweep.grid import build_sweep, identity, row_key
from xpnn.cli.sweep.results import OPTIONAL, ROW_FIELDS, ResultsFile, row_problem
from xpnn.errors import OutputError, XpnnValueError
from xpnn.io import atomic

pytest.importorskip("distributed", reason="dask.distributed is not installed (xpnn[dask])")

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster of two worker processes: nox -s distributed "
    "(or XPNN_DISTRIBUTED=1)",
)
SPEC = build_sweep(argparse.Namespace(run="sine", grid=["lr=0.1,0.2"], seeds=2), ["--iters", "5"])
ARGV = ["sweep", "sine", "--iters", "5", "--grid", "lr=0.1,0.2", "--seeds", "2"]


@pytest.fixture(scope="module")
def ident() -> dict:
    return identity(SPEC)


def _row(config: dict[str, str], seed: int, /, **fields) -> dict:
    """A complete row of ``config`` and ``seed`` as ``run_one`` writes it, ``fields``
    changed (a field given as ``...`` is left out)."""
    row = {"config": config, "seed": seed, "final_loss": 0.5, "diverged_at": None}
    row |= {"first_exact": None, "metrics": {"test_mse": 0.25}, "seconds": 1.5}
    row |= {"worker": "tcp://127.0.0.1:1", **fields}
    return {k: v for k, v in row.items() if v is not ...}


def _line(value: object) -> bytes:
    return json.dumps(value).encode()


def _header(ident: dict) -> bytes:
    return _line({"xpnn_sweep": ident}) + b"\n"


def _lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


def _no_tasks(*_args, **_kwargs):
    raise AssertionError("a task was sent")


def _main(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# -- lines that are not rows of this sweep ------------------------------------------------

FIRST, LAST = _row({"lr": "0.1"}, 0), _row({"lr": "0.2"}, 1)
BAD_LINES = {
    "garbage": b"garbage {",
    "a zero-filled block": b"\0" * 4096,
    "an empty line": b"",
    "not UTF-8": b'\xff\xfe{"config"',
    "nested past the parser's depth": b"[" * 100_000,
    "a list": _line([FIRST]),
    "null": b"null",
    "a string": _line("row"),
    "a number too long to read": b"1" * 5000,
    "a config of another grid value": _line(_row({"lr": "0.3"}, 1)),
    "a config with another key": _line(_row({"lr": "0.1", "iters": "5"}, 1)),
    "a config value that is a list": _line(_row({"lr": ["0.1"]}, 1)),
    "a bool seed": _line(_row({"lr": "0.1"}, True)),
    "a negative seed": _line(_row({"lr": "0.1"}, -1)),
    "a fractional seed": _line(_row({"lr": "0.1"}, 1.0)),
    "neither a loss nor a divergence": _line(_row({"lr": "0.1"}, 1, final_loss=None)),
    "a loss and a divergence": _line(_row({"lr": "0.1"}, 1, diverged_at=7)),
    "metrics that are not numbers": _line(_row({"lr": "0.1"}, 1, metrics={"test_mse": "low"})),
    "a bool metric": _line(_row({"lr": "0.1"}, 1, metrics={"test_mse": True})),
    "exact pairs without a total": _line(_row({"lr": "0.1"}, 1, metrics={"exact": 3})),
    "exact pairs of a zero total": _line(_row({"lr": "0.1"}, 1, metrics={"exact": 0, "total": 0})),
    "a curve point that is not a pair": _line(_row({"lr": "0.1"}, 1, curve=[[100]])),
    "a curve that goes back": _line(_row({"lr": "0.1"}, 1, curve=[[100, 0.5], [50, 0.4]])),
    "a curve point that is not a number": _line(_row({"lr": "0.1"}, 1, curve=[[100, "x"]])),
    **{
        f"no {name}": _line(_row({"lr": "0.1"}, 1, **{name: ...}))
        for name in ROW_FIELDS
        if name not in OPTIONAL  # a diverged run's row has no metrics: see the test below
    },
    **{
        f"{name} a list": _line(_row({"lr": "0.1"}, 1, **{name: []}))
        for name in ROW_FIELDS
        if name != "curve"
    },
    **{
        f"{name} a string": _line(_row({"lr": "0.1"}, 1, **{name: "1"}))
        for name in ROW_FIELDS
        if name not in ("worker",)
    },
}


@pytest.mark.parametrize("bad", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_a_line_that_is_not_a_row_is_ignored_and_its_run_runs_again(
    bad: bytes, tmp_path: Path, ident: dict
) -> None:
    path = tmp_path / "s.jsonl"
    data = _header(ident) + _line(FIRST) + b"\n" + bad + b"\n" + _line(LAST) + b"\n"
    path.write_bytes(data)
    with ResultsFile(path, ident) as results:
        assert results.rows == {
            row_key(r["config"], r["seed"]): r for r in (FIRST, LAST)
        }  # the run of the bad line is not among them: it runs again
        ((number, why),) = results.ignored
        assert number == 3
        assert why and "\n" not in why and len(why) < 200
    assert path.read_bytes() == data  # reported, not rewritten


def test_a_row_repeated_is_reported_once_the_first_kept(tmp_path: Path, ident: dict) -> None:
    path = tmp_path / "s.jsonl"
    again = _row({"lr": "0.1"}, 0, final_loss=0.75)
    path.write_bytes(_header(ident) + b"\n".join(_line(r) for r in (FIRST, again)) + b"\n")
    with ResultsFile(path, ident) as results:
        assert list(results.rows.values()) == [FIRST]
        assert results.ignored == [(3, "it repeats an earlier row's run")]


def test_every_row_run_one_writes_is_a_row(ident: dict) -> None:
    grid = ident["grid"]
    diverged = _row({"lr": "0.2"}, 0, final_loss=None, diverged_at=12, metrics=...)
    exact = _row({"lr": "0.1"}, 3, first_exact=400, metrics={"exact": 16, "total": 16})
    whole_seconds = _row({"lr": "0.1"}, 0, seconds=2, final_loss=0)  # JSON ints
    curve = _row({"lr": "0.2"}, 1, curve=[[0, 0.5], [100, 0.25]])  # --eval-every's test curve
    for row in (FIRST, LAST, diverged, exact, whole_seconds, curve):
        assert row_problem(json.loads(json.dumps(row)), grid) is None


@pytest.mark.parametrize("count", [2, command.REPORTED + 3])
def test_the_sweep_reports_each_ignored_line_on_one_line_and_reruns_it(
    count: int, tmp_path: Path, ident: dict, capsys, monkeypatch
) -> None:
    out = tmp_path / "s.jsonl"
    lines = [_line(FIRST), *[b"\0" * 100] * count, _line(LAST)]
    out.write_bytes(_header(ident) + b"\n".join(lines) + b"\n")
    sent = []

    def execute(spec, results, client, progress):  # records the runs it would send
        sent.extend((c, s) for c, s in spec.tasks() if row_key(c, s) not in results.rows)
        return tasks.Outcome(skipped=len(spec.tasks()) - len(sent))

    monkeypatch.setattr(command, "connect", lambda *_: contextlib.nullcontext(_FakeClient()))
    monkeypatch.setattr(command, "execute", execute)
    assert _main([*ARGV, "--out", str(out)]) == 0
    warnings = [line for line in _err_lines(capsys) if "warning" in line]
    shown = min(count, command.REPORTED)
    assert warnings[:shown] == [
        f"xpnn sweep: warning: {out} line {n} is not a complete row of this sweep "
        "(it is not JSON); ignored, its run runs again"
        for n in range(3, 3 + shown)
    ]
    assert warnings[shown:] == (
        [f"xpnn sweep: warning: {count - shown} more such lines ignored"] if count > shown else []
    )
    assert sent == [({"lr": "0.1"}, 1), ({"lr": "0.2"}, 0)]


class _FakeClient:
    def scheduler_info(self) -> dict:
        return {"workers": {"tcp://127.0.0.1:1": {}}}


# -- the header ------------------------------------------------------------------------------

HEADERS = {
    "a list": lambda i: [i],
    "no sweep": lambda i: {"xpnn_sweep": None},
    "a sweep that is a list": lambda i: {"xpnn_sweep": [i]},
    "RUN a number": lambda i: {"xpnn_sweep": {**i, "run": 5}},
    "options a list": lambda i: {"xpnn_sweep": {**i, "options": []}},
    "no options": lambda i: {"xpnn_sweep": {"run": i["run"], "grid": i["grid"]}},
    "the grid a string": lambda i: {"xpnn_sweep": {**i, "grid": "lr=0.1,0.2"}},
    "grid values a string": lambda i: {"xpnn_sweep": {**i, "grid": {"lr": "0.1,0.2"}}},
    "grid values numbers": lambda i: {"xpnn_sweep": {**i, "grid": {"lr": [0.1, 0.2]}}},
}


@pytest.mark.parametrize("make", list(HEADERS.values()), ids=list(HEADERS))
def test_a_header_of_the_wrong_shape_is_refused_in_one_line(
    make, tmp_path: Path, ident: dict, capsys, monkeypatch
) -> None:
    out = tmp_path / "s.jsonl"
    data = _line(make(ident)) + b"\n" + _line(FIRST) + b"\n"
    out.write_bytes(data)
    with pytest.raises(XpnnValueError, match="is not an xpnn sweep results file"):
        ResultsFile(out, ident)
    monkeypatch.setattr(command, "connect", _no_tasks)
    assert _main([*ARGV, "--out", str(out)]) == 2
    (err,) = _err_lines(capsys)
    assert (
        err == f"xpnn sweep: error: {out} is not an xpnn sweep results file; choose another --out"
    )
    assert out.read_bytes() == data
    assert not _lock_path(out).exists()


def test_a_header_cut_short_by_a_kill_is_written_again(tmp_path: Path, ident: dict) -> None:
    out = tmp_path / "s.jsonl"
    out.write_bytes(_header(ident)[:25])
    with ResultsFile(out, ident) as results:
        assert results.rows == {} and results.ignored == []
    assert out.read_bytes() == _header(ident)


# -- writing: checked before any task, a failure stops the sweep --------------------------


class _Disk:
    """A raw file that takes ``room`` more bytes, then fails with ENOSPC."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = self.file.write(bytes(data[: self.room]))
        self.room -= taken
        return taken

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def _full_after(room: int):
    """An ``open`` for the sweep module whose files take ``room`` bytes, then are full."""
    return lambda *args, **kwargs: _Disk(open(*args, **kwargs), room)


def _refusing(code: int):
    def refuse(path, *_args, **_kwargs):
        raise OSError(code, os.strerror(code), str(path))

    return refuse


@pytest.mark.parametrize(
    ("where", "patched_open", "cause"),
    [
        ("dir", None, "Is a directory"),
        ("missing/s.jsonl", None, "No such file or directory"),
        ("s.jsonl", _refusing(errno.EROFS), "Read-only file system"),
        ("s.jsonl", _refusing(errno.EACCES), "Permission denied"),
        ("s.jsonl", _full_after(0), "No space left on device"),
        ("s.jsonl", _full_after(30), "No space left on device"),  # half a header
    ],
)
def test_an_out_that_cannot_be_written_is_refused_before_any_task(
    where: str, patched_open, cause: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    (tmp_path / "dir").mkdir()
    out = tmp_path / where
    if patched_open is not None:
        monkeypatch.setattr(sweep_results, "open", patched_open, raising=False)
    monkeypatch.setattr(command, "connect", _no_tasks)
    assert _main([*ARGV, "--out", str(out)]) == 2
    (err,) = _err_lines(capsys)
    assert err == f"xpnn sweep: error: cannot write the results file {str(out)!r}: {cause}"
    assert not _lock_path(out).exists()
    if out.is_file():  # what the full disk took of the header is cut back
        assert out.read_bytes() == b""


def test_a_full_disk_mid_sweep_keeps_the_rows_written_whole(tmp_path: Path, ident: dict) -> None:
    out = tmp_path / "s.jsonl"
    with ResultsFile(out, ident):
        pass  # the header
    kept = _header(ident) + _line(FIRST) + b"\n"
    with (
        pytest.MonkeyPatch.context() as mp,
        ResultsFile(out, ident) as results,
    ):
        mp.setattr(results, "_file", _Disk(results._file, len(_line(FIRST)) + 1 + 20))
        results.append(FIRST)
        with pytest.raises(OutputError) as caught:
            results.append(LAST)  # 20 bytes of it fit
        assert out.read_bytes() == kept  # the part of LAST that fitted is cut back
        assert list(results.rows.values()) == [FIRST]
    assert str(caught.value) == (
        f"cannot write to the results file {str(out)!r}: No space left on device; the sweep "
        "stops, the rows written so far stay (rerun it to finish)"
    )
    assert not _lock_path(out).exists()


def test_a_write_error_mid_sweep_exits_1_with_one_line(
    tmp_path: Path, ident: dict, capsys, monkeypatch
) -> None:
    out = tmp_path / "s.jsonl"
    monkeypatch.setattr(sweep_results, "open", _full_after(len(_header(ident)) + 10), raising=False)

    def execute(spec, results, client, progress):
        for config, seed in spec.tasks():
            results.append(_row(config, seed))
        raise AssertionError("every row was written on a full disk")

    monkeypatch.setattr(command, "connect", lambda *_: contextlib.nullcontext(_FakeClient()))
    monkeypatch.setattr(command, "execute", execute)
    assert _main([*ARGV, "--out", str(out)]) == 1
    err = _err_lines(capsys)
    assert err[-1].startswith(f"xpnn sweep: error: cannot write to the results file {str(out)!r}")
    assert "Traceback" not in "".join(err)
    assert out.read_bytes() == _header(ident)
    assert not _lock_path(out).exists()


# -- one sweep a file --------------------------------------------------------------------------


def test_a_second_sweep_on_the_same_out_is_refused_naming_the_holder(
    tmp_path: Path, ident: dict, capsys, monkeypatch
) -> None:
    out = tmp_path / "s.jsonl"
    monkeypatch.setattr(command, "connect", _no_tasks)
    with ResultsFile(out, ident) as first:
        first.append(FIRST)
        data = out.read_bytes()
        assert json.loads(_lock_path(out).read_text())["pid"] == os.getpid()
        with pytest.raises(XpnnValueError, match=f"pid {os.getpid()} on {atomic.HOST}"):
            ResultsFile(out, ident)
        assert _main([*ARGV, "--out", str(out)]) == 2
        (err,) = _err_lines(capsys)
        assert f"{out} is in use by another xpnn sweep (pid {os.getpid()} on {atomic.HOST}" in err
        assert f"choose another --out. If that sweep is gone, remove {_lock_path(out)}" in err
        assert out.read_bytes() == data
    assert not _lock_path(out).exists()
    with ResultsFile(out, ident) as again:  # released: free again
        assert list(again.rows.values()) == [FIRST]


def _dead_pid() -> int:
    """A pid no process of this host has now."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(p for p in range(pid_max - 1, 1, -1) if not atomic.process_alive(p))


def test_a_stale_lock_of_a_dead_sweep_is_broken(tmp_path: Path, ident: dict) -> None:
    out = tmp_path / "s.jsonl"
    info = {"pid": _dead_pid(), "host": atomic.HOST, "started": 0}
    _lock_path(out).write_text(json.dumps(info))
    with ResultsFile(out, ident):
        assert json.loads(_lock_path(out).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]


def test_a_lock_from_another_host_is_never_broken(tmp_path: Path, ident: dict) -> None:
    out = tmp_path / "s.jsonl"
    info = {"pid": _dead_pid(), "host": "another-host", "started": 0}
    _lock_path(out).write_text(json.dumps(info))
    with pytest.raises(XpnnValueError, match=f"pid {info['pid']} on another-host"):
        ResultsFile(out, ident)
    assert _lock_path(out).exists()


# -- on a real LocalCluster of two worker processes ----------------------------------------


@DISTRIBUTED
def test_a_full_disk_stops_a_running_sweep_and_keeps_its_rows(
    tmp_path: Path, ident: dict, capsys, monkeypatch
) -> None:
    out = tmp_path / "s.jsonl"
    room = len(_header(ident)) + 400  # a row is about 200 bytes
    monkeypatch.setattr(sweep_results, "open", _full_after(room), raising=False)
    argv = [*ARGV[:-1], "3", "--workers", "2", "--out", str(out)]  # 6 runs
    assert cli.main(argv) == 1
    err = _err_lines(capsys)
    assert err[-1].startswith(f"xpnn sweep: error: cannot write to the results file {str(out)!r}")
    assert "Traceback" not in "\n".join(err)
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""  # whole lines only
    rows = [json.loads(line) for line in lines[1:-1]]
    assert 1 <= len(rows) < 6
    assert all(row_problem(r, ident["grid"]) is None for r in rows)
    assert not _lock_path(out).exists()
