"""Resumable training: a run that keeps ``folder/checkpoint.npz`` current, continues
from it after an interruption (a SIGKILL included) and, when training diverges, leaves
the last finite state on disk.

A resumed run ends with the parameters an uninterrupted one would have reached, bit for
bit: the data of iteration ``i`` depends only on the seed and ``i`` (``xpnn.datasets``),
and the optimiser's memory is part of the checkpoint.

The run's place travels as one ``TrainState``: ``train`` hands it to ``on_step``, which
saves it; ``begin`` reads it back. A folder has one run at a time (``xpnn.io.lock``).
The checkpoint records every setting that changes the result: the caller's
``settings``, the backend, device and dtype, ``log_every`` (which iterations are read
into the history), ``truncate``, ``clip`` and ``compile``; a resumed run with any of
them changed is refused. ``checkpoint_every`` may change: a save only copies the state
between two iterations and changes nothing, so where the saves fall never changes the
parameters or the history.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xpnn.backends import device_name
from xpnn.checkpoint import Checkpoint, NonFiniteParameters, load, optimizer_spec, save
from xpnn.errors import CheckpointError, TrainingDiverged, XpnnValueError, shown
from xpnn.io.atomic import remove_stale_temps
from xpnn.io.lock import FolderLock
from xpnn.training.state import LogEvent, TrainState
from xpnn.training.train import train

# train() arguments that change the result (a compiled step rounds unlike an eager one)
RECORDED = ("log_every", "truncate", "clip", "compile")
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
            msg = f"checkpoint_every must be an integer of at least 1, got {shown(every)}"
            raise XpnnValueError(msg)
        self.every, self.settings, self.resume = every, dict(settings), resume
        self.path = self.folder / self.FILENAME
        self.lock = FolderLock(self.folder)

    def begin(self, model: Any, optimizer: Any, iters: int) -> TrainState | None:
        """The ``TrainState`` to resume from, its parameters also put on ``model``; None
        for a fresh start (from ``model.params`` and ``optimizer.init``). Needs
        ``self.lock`` held."""
        if not self.lock.held:
            msg = "Checkpointer.begin needs the folder's lock: call run(), or lock.acquire()"
            raise CheckpointError(msg)
        remove_stale_temps(self.path)  # of saves killed midway; the lock keeps others out
        if not self.resume:
            if self.path.exists():
                msg = (
                    f"{self.path} already holds a checkpoint: continue it with --resume, "
                    "or remove it (or pick another folder) to start afresh"
                )
                raise CheckpointError(msg)
            return None
        if not self.path.exists():
            msg = (
                f"nothing to resume: {self.folder} holds no {self.FILENAME}; run once "
                "without --resume to start one"
            )
            raise CheckpointError(msg)
        saved = load(self.path, backend=model.backend, device=model.device, dtype=None)
        self._check_same_run(saved, model, optimizer, iters)
        model.params = {key: model.asarray(p, name=key) for key, p in saved.model.params.items()}
        state = {key: model.asarray(a, name=key) for key, a in saved.optimizer_state.items()}
        return TrainState(saved.step, model.params, state, tuple(saved.history))

    def _check_same_run(self, saved: Checkpoint, model: Any, optimizer: Any, iters: int) -> None:
        extra = saved.extra if isinstance(saved.extra, dict) else {}
        theirs = extra.get("settings") if isinstance(extra.get("settings"), dict) else {}
        differ = sorted(
            k for k in set(theirs) | set(self.settings) if theirs.get(k) != self.settings.get(k)
        )
        if differ:
            was = ", ".join(f"{k}={shown(theirs.get(k))}" for k in differ)
            now = ", ".join(f"{k}={shown(self.settings.get(k))}" for k in differ)
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

    def save(self, model: Any, optimizer: Any, state: TrainState, iters: int) -> bool:
        """Save ``state`` (its step, parameters, optimiser state and history; ``model``
        gives the architecture) unless an array is not finite (then the file on disk keeps
        the last finite state); return whether it saved."""
        extra = {"settings": self.settings, "iters": iters, "checkpoint_every": self.every}
        try:
            save(
                self.path,
                model,
                optimizer,
                state.step,
                state.history,
                extra,
                state=state.opt_state,
                params=state.params,
            )
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
    ) -> TrainState:
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
    ) -> TrainState:
        resumed = self.begin(model, optimizer, iters)

        def step(state: TrainState) -> None:
            if state.step < iters:
                self.save(model, optimizer, state, iters)

        try:
            result = train(
                model,
                optimizer,
                stream,
                iters=iters,
                start=0 if resumed is None else resumed.step,
                state=None if resumed is None else resumed.opt_state,
                history=None if resumed is None else resumed.history,
                on_log=on_log,
                on_step=step,
                on_step_every=self.every,
                **kwargs,
            )
        except TrainingDiverged as exc:  # train() restored the last finite reading's state
            if self.path.exists():  # else: diverged before the first save; nothing to fix
                history = tuple(h for h in exc.history if h[0] < exc.good_step)
                good = TrainState(exc.good_step, exc.params, exc.state, history)
                self.save(model, optimizer, good, iters)
            raise
        self.save(model, optimizer, result, iters)
        return result


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
