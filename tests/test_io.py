"""``xpnn.io.atomic``: a write that fails (a full disk, a read-only folder) raises one
``OutputError`` naming the path and the reason, and leaves the previous file whole and no
temporary file behind."""

from __future__ import annotations

import errno
import os

import pytest

from xpnn.errors import OutputError, XpnnError
from xpnn.io import atomic
from xpnn.io.atomic import write_bytes_atomic, write_text_atomic


def test_writes_replace_the_file(tmp_path):
    path = tmp_path / "out.json"
    assert write_text_atomic(path, "one") == path
    write_bytes_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["out.json"]


def _fail(err: int):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    return fail


@pytest.mark.parametrize(
    ("where", "err"),
    [
        ("fsync", errno.ENOSPC),  # a full disk shows at the latest when the data are flushed
        ("replace", errno.EROFS),
        ("mkstemp", errno.EACCES),  # a read-only folder (root writes into chmod 500 ones)
    ],
)
def test_a_failed_write_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch, where, err):
    path = tmp_path / "out.json"
    write_text_atomic(path, "old")
    target = atomic.tempfile if where == "mkstemp" else atomic.os
    monkeypatch.setattr(target, where, _fail(err))
    with pytest.raises(OutputError) as info:
        write_text_atomic(path, "new", what="the results file")
    monkeypatch.undo()
    assert str(info.value) == f"cannot write the results file {path}: {os.strerror(err)}"
    assert isinstance(info.value, XpnnError) and isinstance(info.value, OSError)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"], "a temporary file was left behind"


def test_remove_stale_temps_keeps_live_and_foreign_ones(tmp_path):
    path = tmp_path / "c.npz"
    mine = tmp_path / f"{atomic.temp_prefix(path)}abc.tmp"
    foreign = tmp_path / ".c.npz.1@another-host.abc.tmp"
    other = tmp_path / ".d.npz.1@x.abc.tmp"
    for temp in (mine, foreign, other):
        temp.write_bytes(b"?")
    assert atomic.temp_owner(path, mine) == (os.getpid(), atomic.HOST)
    atomic.remove_stale_temps(path)
    assert sorted(os.listdir(tmp_path)) == sorted([foreign.name, other.name])
