"""Atomic file writes, and the host name and process checks that tell whose leftovers are
whose.

A write goes to a temporary file in the target's folder, named
``.NAME.PID@HOST.<random>.tmp`` (``temp_prefix``), is flushed and fsync'd, replaces the
target with ``os.replace`` and then the folder is fsync'd: a crash at any moment leaves
either the previous file or the new one, whole, and at most a temporary file that a later
run can attribute (``temp_owner``) and remove once its writer is gone
(``remove_stale_temps``). A write that fails leaves the previous file as it was, removes
its temporary file and raises an ``OutputError`` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from xpnn.errors import OutputError


def _umasked() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process's umask (read once:
    the umask can only be read by setting it)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_UMASKED = _umasked()

HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped,
    counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True


def holder_gone(pid: int, host: str) -> bool:
    """Whether the process ``pid`` on ``host`` has provably ended: it ran on this host
    and is no longer alive. A process on another host is never known to be gone."""
    return host == HOST and not process_alive(pid)


def temp_prefix(path: Path) -> str:
    """The start of the name of ``path``'s temporary files: ``.NAME.PID@HOST.``, so a
    later run can tell whose a leftover is (``temp_owner``)."""
    return f".{path.name}.{os.getpid()}@{HOST}."


def temp_owner(path: Path, temp: Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the process that made the temporary file ``temp`` of
    ``path``, or None if ``temp`` is not one."""
    match = re.fullmatch(rf"\.{re.escape(path.name)}\.(\d+)@([A-Za-z0-9._-]+)\.\w+\.tmp", temp.name)
    return None if match is None else (int(match[1]), match[2])


def remove_stale_temps(path: Path) -> None:
    """Delete the temporary files of writes of ``path`` killed midway: this process's,
    or those of a process provably gone from this host. Another host's, or a live
    process's, stay. Call it only while nobody else may write ``path`` (a lock held)."""
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        owner = temp_owner(path, temp)
        if owner is not None and (owner[0] == os.getpid() or holder_gone(*owner)):
            with contextlib.suppress(OSError):
                temp.unlink()


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], None], *, what: str = "the file"
) -> Path:
    """Write exactly ``path`` through ``write(file)`` (a binary file open for writing):
    a temporary file in the same folder, flushed and fsync'd, then ``os.replace``; the
    folder is fsync'd after. Returns the path.

    Raises
    ------
    OutputError
        The file cannot be written (``"cannot write the checkpoint /d/c.npz: No space
        left on device"``, ``what`` naming the file's role); the previous file at ``path``
        is untouched and no temporary file is left. Any other exception raised by
        ``write`` propagates, with the same guarantees.
    """
    path = Path(path)
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _output_error(path, what, exc) from None
    try:
        os.fchmod(fd, _UMASKED)  # mkstemp makes 0600; a new file of ours gets the umask's
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(path, what, exc) from None
        raise
    fsync_folder(folder)
    return path


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, what: str = "the file"
) -> Path:
    """Write ``data`` to ``path`` atomically (``write_atomic``); return the path."""
    return write_atomic(path, lambda file: file.write(data), what=what)


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, what: str = "the file", encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (``write_atomic``), encoded as ``encoding``;
    return the path."""
    return write_bytes_atomic(path, text.encode(encoding), what=what)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _output_error(path: Path, what: str, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write {what} {path}: {reason}")
