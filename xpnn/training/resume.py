"""Resumable training: a run that keeps ``folder/checkpoint.npz`` current, continues
from it after an interruption (a SIGKILL included) and, when training diverges, leaves
the last finite state on disk.

A resumed run ends with the parameters an uninterrupted one would have reached, bit for
bit: the data of iteration ``i`` depends only on the seed and ``i`` (``xpnn.datasets``),
and the optimiser's memory is part of the checkpoint.

A folder has one run at a time (``xpnn.training.lock``). The checkpoint records every
setting that changes the result: the caller's ``settings``, the backend, device and
dtype, ``log_every`` (which iterations are read into the history), ``truncate`` and
``clip``; a resumed run with any of them changed is refused. ``checkpoint_every`` may
change: a save only copies the state between two iterations and changes nothing, so
where the saves fall never changes the parameters or the history.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xpnn.backend import Array, device_name
from xpnn.checkpoint import (
    Checkpoint,
    NonFiniteParameters,
    load,
    optimizer_spec,
    save,
    temp_owner,
)
from xpnn.errors import CheckpointError, TrainingDiverged, XpnnValueError
from xpnn.training.lock import FolderLock, holder_gone
from xpnn.training.train import LogEvent, TrainResult, train

RECORDED = ("log_every", "truncate", "clip")  # train() arguments that change the result
_TRAIN_DEFAULTS = {key: inspect.signature(train).parameters[key].default for key in RECORDED}


class Checkpointer:
    """Keeps ``folder/checkpoint.npz`` current during a training run.

    Parameters
    ----------
    folder : path
        An existing, writable folder.
    every : int
        Save after every ``every`` iterations (and at the end).
    settings : dict
        The run's settings as JSON data: a resumed run must have the same ones (the
        backend, device, dtype and ``RECORDED`` arguments of ``run`` are added to them).
    resume : bool
        Continue from the checkpoint in ``folder`` (which must exist); otherwise the
        folder must hold none, so a fresh run never overwrites earlier work.
    """

    FILENAME = "checkpoint.npz"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        every: int,
        settings: Mapping[str, Any],
        resume: bool = False,
    ) -> None:
        self.folder = check_folder(folder)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            msg = f"checkpoint_every must be an integer of at least 1, got {every!r}"
            raise XpnnValueError(msg)
        self.every, self.settings, self.resume = every, dict(settings), resume
        self.path = self.folder / self.FILENAME
        self.lock = FolderLock(self.folder)
        self._history: list[tuple[int, float]] = []
        self._last_good: tuple[int, dict[str, Array], dict[str, Array]] | None = None

    def begin(self, model: Any, optimizer: Any, iters: int) -> tuple[int, list[tuple[int, float]]]:
        """Restore ``model`` and ``optimizer`` from the checkpoint when resuming; return
        the iteration to start from and the history so far. Needs ``self.lock`` held."""
        if not self.lock.held:
            msg = "Checkpointer.begin needs the folder's lock: call run(), or lock.acquire()"
            raise CheckpointError(msg)
        self._remove_stale_temps()
        if not self.resume:
            if self.path.exists():
                msg = (
                    f"{self.path} already holds a checkpoint: continue it with --resume, "
                    "or remove it (or pick another folder) to start afresh"
                )
                raise CheckpointError(msg)
            self._history = []
            return 0, []
        if not self.path.exists():
            msg = (
                f"nothing to resume: {self.folder} holds no {self.FILENAME}; run once "
                "without --resume to start one"
            )
            raise CheckpointError(msg)
        saved = load(self.path, backend=model.backend, device=model.device, dtype=None)
        self._check_same_run(saved, model, optimizer, iters)
        model.params = {key: model.asarray(p, name=key) for key, p in saved.model.params.items()}
        optimizer.load_state_dict(saved.optimizer_state)
        self._history = list(saved.history)
        return saved.step, list(saved.history)

    def _remove_stale_temps(self) -> None:
        """Delete the temporary files of saves killed midway: only this process's, or
        those of a process provably gone from this host (with the lock held, no other
        run writes here). Another host's, or a live process's, stay."""
        for temp in self.folder.glob(f".{self.FILENAME}.*.tmp"):
            owner = temp_owner(self.path, temp)
            if owner is not None and (owner[0] == os.getpid() or holder_gone(*owner)):
                with contextlib.suppress(OSError):
                    temp.unlink()

    def _check_same_run(self, saved: Checkpoint, model: Any, optimizer: Any, iters: int) -> None:
        extra = saved.extra if isinstance(saved.extra, dict) else {}
        theirs = extra.get("settings") if isinstance(extra.get("settings"), dict) else {}
        differ = sorted(
            k for k in set(theirs) | set(self.settings) if theirs.get(k) != self.settings.get(k)
        )
        if differ:
            was = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
            now = ", ".join(f"{k}={self.settings.get(k)!r}" for k in differ)
            msg = (
                f"{self.path} was written by a run with {was}; this run has {now}. Resume "
                "with the same settings, or start afresh in another folder"
            )
            raise CheckpointError(msg)
        if saved.model.dtype != model.dtype:
            msg = f"{self.path} holds {saved.config['dtype']} parameters; resume in that dtype"
            raise CheckpointError(msg)
        if saved.model.config != model.config or saved.optimizer != optimizer_spec(optimizer):
            msg = f"{self.path} holds another model or optimiser than this run builds"
            raise CheckpointError(msg)
        if saved.step > iters:
            msg = f"{self.path} is at iteration {saved.step}, past iters={iters}"
            raise CheckpointError(msg)

    def save(self, model: Any, optimizer: Any, step: int, iters: int) -> bool:
        """Save the state after ``step`` iterations unless a parameter is not finite
        (then the file on disk keeps the last finite state); return whether it saved."""
        extra = {"settings": self.settings, "iters": iters, "checkpoint_every": self.every}
        try:
            save(self.path, model, optimizer, step, self._history, extra)
        except NonFiniteParameters:
            return False
        return True

    def run(
        self,
        model: Any,
        optimizer: Any,
        stream: Any,
        *,
        iters: int,
        on_log: Callable[[LogEvent], None] | None = None,
        **kwargs: Any,
    ) -> TrainResult:
        """``train`` from where the checkpoint left off (or from 0), saving every
        ``every`` iterations and at the end.

        Raises
        ------
        TrainingDiverged
            As ``train``; the checkpoint on disk then holds the last finite reading's
            parameters and optimiser state, never NaN.
        """
        self.settings = {
            **self.settings,
            "backend": model.backend,
            "device": device_name(model.device),
            "dtype": str(model.dtype).rsplit(".", 1)[-1],
            **{key: kwargs.get(key, _TRAIN_DEFAULTS[key]) for key in RECORDED},
        }
        with self.lock:
            return self._run(model, optimizer, stream, iters=iters, on_log=on_log, **kwargs)

    def _run(
        self,
        model: Any,
        optimizer: Any,
        stream: Any,
        *,
        iters: int,
        on_log: Callable[[LogEvent], None] | None,
        **kwargs: Any,
    ) -> TrainResult:
        start, history = self.begin(model, optimizer, iters)

        def log(event: LogEvent) -> None:
            self._history.append((event.iteration, event.loss))
            # the parameters and memory of this finite reading; updates never write into them
            self._last_good = (event.iteration, dict(model.params), optimizer.state_dict())
            if on_log is not None:
                on_log(event)

        def step(done: int) -> None:
            if done % self.every == 0 and done < iters:
                self.save(model, optimizer, done, iters)

        try:
            result = train(
                model,
                optimizer,
                stream,
                iters=iters,
                start=start,
                history=history,
                on_log=log,
                on_step=step,
                **kwargs,
            )
        except TrainingDiverged:
            self._save_last_good(model, optimizer, iters)
            raise
        if not self.save(model, optimizer, iters, iters):
            msg = (
                "training diverged: a parameter is not finite after the last iteration; "
                "the parameters were restored to the last finite reading"
            )
            readings = list(self._history)
            self._save_last_good(model, optimizer, iters)
            raise TrainingDiverged(msg, iteration=iters - 1, params=model.params, history=readings)
        return result

    def _save_last_good(self, model: Any, optimizer: Any, iters: int) -> None:
        """Put the last finite reading's state on disk (and on the model)."""
        if self._last_good is None:  # diverged at the first reading: the disk already has it
            return
        step, params, state = self._last_good
        self._history = [h for h in self._history if h[0] < step]
        model.params = params
        optimizer.load_state_dict(state)
        self.save(model, optimizer, step, iters)


def check_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` as a Path if it is an existing folder this process can write into."""
    path = Path(folder)
    if not path.exists():
        msg = f"checkpoint folder {str(path)!r} does not exist; create it first"
        raise CheckpointError(msg)
    if not path.is_dir():
        msg = f"checkpoint folder {str(path)!r} is not a folder"
        raise CheckpointError(msg)
    try:
        fd, probe = tempfile.mkstemp(prefix=".xpnn-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        msg = f"checkpoint folder {str(path)!r} is not writable ({exc.strerror or exc})"
        raise CheckpointError(msg) from None
    return path
