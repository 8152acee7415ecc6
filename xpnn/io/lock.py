"""One owner at a time for a checkpoint folder: a lock file held for a training run.

``FolderLock(folder)`` creates ``folder/.xpnn.lock`` with ``O_CREAT | O_EXCL`` (so of two
runs started a moment apart exactly one creates it), holds an ``flock`` on it for the
run, and writes the holder's pid, host and start time into it. A second run is refused
with a message naming the holder. A lock left by a killed run is recovered: it is stale
when its process is gone from this host *and* nobody holds its ``flock`` (the kernel
drops a dead process's ``flock``, so a reused pid cannot keep a folder locked, and a live
holder is never broken). A lock from another host is never broken automatically.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from xpnn.errors import CheckpointError
from xpnn.io.atomic import HOST, holder_gone

try:  # POSIX; elsewhere a stale lock is judged by its pid alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

RETRIES = 100  # a lock file being written or broken by another run: wait up to ~1 s


class FolderLock:
    """The lock of one checkpoint folder; ``acquire`` it before touching the folder's
    files and ``release`` it at the end of the run (or use it as a context manager).

    Raises
    ------
    CheckpointError
        From ``acquire``: another live run holds the folder (the message names its pid,
        host and start time), or the lock file cannot be created.
    """

    NAME = ".xpnn.lock"
    HOLDER = "run"  # what holds the lock, in the message to whoever finds it held
    ELSEWHERE = "use another folder"  # what that one can do instead of waiting

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.subject = Path(folder)  # what the lock guards, as the message names it
        self.path = self.subject / self.NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the folder, recovering a stale lock; refuse while a live run holds it."""
        if self.held:
            return
        for _ in range(RETRIES):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_if_stale()
                continue
            except OSError as exc:
                msg = f"cannot create the lock {self.path}: {exc.strerror or exc}"
                raise CheckpointError(msg) from None
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone: nobody else opened it yet
                info = {"pid": os.getpid(), "host": HOST, "started": time.time()}
                os.write(fd, json.dumps(info).encode())
                os.fsync(fd)
            except OSError as exc:  # a full disk: give the folder back as it was
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                os.close(fd)
                msg = f"cannot write the lock {self.path}: {exc.strerror or exc}"
                raise CheckpointError(msg) from None
            self._fd = fd
            return
        msg = (
            f"{self.path} stays unreadable or in use; if no xpnn run uses "
            f"{self.path.parent}, remove that file"
        )
        raise CheckpointError(msg)

    def release(self) -> None:
        """Give the folder back: remove the lock file (if it is still ours) and close it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(self.path)
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _break_if_stale(self) -> None:
        """Remove the lock file if its holder has provably ended; raise if it lives;
        return (to retry) if the file is being written or was just removed."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:  # released (or broken by another run) meanwhile
            return
        try:
            info = _holder(os.read(fd, 4096))
            if info is not None and not holder_gone(info["pid"], info["host"]):
                raise CheckpointError(self._held_message(info))
            if info is None or not _try_flock(fd):
                # being written by its creator, or being broken by another run: wait
                time.sleep(0.01)
                return
            with contextlib.suppress(OSError):  # still the file we checked? then it goes
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(self.path)
        finally:
            os.close(fd)

    def _held_message(self, info: dict[str, Any]) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["started"]))
        return (
            f"{self.subject} is in use by another xpnn {self.HOLDER} (pid {info['pid']} on "
            f"{info['host']}, since {since}); wait for it to end or {self.ELSEWHERE}. "
            f"If that {self.HOLDER} is gone, remove {self.path}"
        )


def _holder(raw: bytes) -> dict[str, Any] | None:
    """The lock file's ``{"pid", "host", "started"}``, or None if it is not (yet) that."""
    try:
        info = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    ok = (
        isinstance(info, dict)
        and isinstance(info.get("pid"), int)
        and isinstance(info.get("host"), str)
        and isinstance(info.get("started"), (int, float))
    )
    return info if ok else None


def _try_flock(fd: int) -> bool:
    """Whether nobody holds the file's ``flock`` (taken, if so, until ``fd`` closes)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True
