"""``--plot`` and ``--json`` outputs that cannot be written (a read-only folder, a full
disk, a folder at the path): one line naming the path and the cause, exit 1, no
traceback, and no part of a file: the previous one stays byte-identical. The files xpnn
writes get the mode the umask gives."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from xpnn import cli
from xpnn.cli import plotting
from xpnn.cli.sweep import report
from xpnn.errors import OutputError, XpnnError
from xpnn.io import atomic

pytest.importorskip("matplotlib", reason="the plot extra is not installed")

TRAIN = ["train", "regression", "--iters", "20", "--log-every", "5", "--quiet"]
OLD = b"the previous figure"


class _Disk:
    """A buffered file that takes ``room`` more bytes, then fails with ENOSPC (having
    written what fitted)."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        taken = self.file.write(bytes(data[: max(self.room, 0)]))
        self.room -= taken
        if taken < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return taken

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def _full_after(room: int):
    fdopen = os.fdopen
    return lambda *args, **kwargs: _Disk(fdopen(*args, **kwargs), room)


def _refusing(code: int):
    def refuse(*_args, **kwargs):
        raise OSError(code, os.strerror(code), str(kwargs.get("dir")))

    return refuse


CAUSES = {
    "read-only folder": (_refusing(errno.EROFS), "Read-only file system"),
    "no permission": (_refusing(errno.EACCES), "Permission denied"),
    "a full disk": (_full_after(0), "No space left on device"),
    "a disk full halfway": (_full_after(1000), "No space left on device"),
}


@pytest.mark.parametrize(("patched_open", "cause"), CAUSES.values(), ids=list(CAUSES))
def test_a_plot_that_cannot_be_written_is_one_line_exit_1_and_no_part(
    patched_open, cause: str, tmp_path: Path, capsys, monkeypatch, request
) -> None:
    path = tmp_path / "loss.png"
    path.write_bytes(OLD)
    where = "fdopen" if "full" in request.node.callspec.id else "mkstemp"
    module = os if where == "fdopen" else atomic.tempfile
    monkeypatch.setattr(module, where, patched_open)
    assert cli.main([*TRAIN, "--plot", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"xpnn: error: cannot write the plot {path}: {cause}"]
    assert path.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]  # no temporary file


def test_a_folder_where_the_plot_should_go_is_an_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "loss.png"  # made after the command line was checked
    folder.mkdir()
    with pytest.raises(OutputError) as caught:
        plotting.loss_curve([(0, 1.0), (5, 0.5)], folder, title="t")
    assert str(caught.value) == f"cannot write the plot {folder}: Is a directory"
    assert isinstance(caught.value, XpnnError)
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"] and not any(folder.iterdir())


def test_a_plot_is_written_whole_at_the_path_given(tmp_path: Path, capsys) -> None:
    path = tmp_path / "loss"  # no suffix: a PNG, at this very path
    assert cli.main([*TRAIN, "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss"]
    svg = tmp_path / "loss.svg"
    plotting.loss_curve([(0, 1.0), (5, 0.5)], svg, title="t")
    assert b"<svg" in svg.read_bytes()[:500]


class _FullStdout:
    """A stdout on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass


def test_a_json_summary_stdout_cannot_take_is_one_line_exit_1(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdout", _FullStdout())
    assert cli.main([*TRAIN, "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "xpnn: error: cannot write the JSON summary to standard output: No space left on device"
    ]


def test_the_json_summary_is_one_write(capsys, monkeypatch) -> None:
    writes: list[str] = []

    class Stdout(_FullStdout):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Stdout())
    assert cli.main([*TRAIN, "--json"]) == 0
    (text,) = writes
    assert text.endswith("}\n") and json.loads(text)["config"]["run"] == "regression"


def test_files_xpnn_writes_get_the_umasks_mode(tmp_path: Path, capsys) -> None:
    """checkpoint.npz, the --plot figure and the sweep's figure are made as any program
    makes a file (0644 under umask 022), not with a temporary file's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    mode = 0o666 & ~umask
    if mode == 0o600:
        pytest.skip("this process's umask (077) gives 0600 to every new file")
    plot, folder = tmp_path / "loss.png", tmp_path / "run"
    assert cli.main([*TRAIN, "--plot", str(plot), "--checkpoint", str(folder)]) == 0
    capsys.readouterr()
    summaries = report.summarize([{"lr": "0.1"}], [])
    report.figure(summaries, tmp_path / "sweep.png", title="t")
    for path in (folder / "checkpoint.npz", plot, tmp_path / "sweep.png"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
