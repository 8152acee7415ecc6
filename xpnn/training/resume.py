"""Resumable training: a run that keeps ``folder/checkpoint.npz`` current, continues
from it after an interruption (a SIGKILL included) and, when training diverges, leaves
the last finite state on disk.

A resumed run ends with the parameters an uninterrupted one would have reached, bit for
bit: the data of iteration ``i`` depends only on the seed and ``i`` (``xpnn.datasets``),
and the optimiser's memory is part of the checkpoint.

The run's place travels as one ``TrainState``: the loop hands it to ``on_step``, which
saves it; ``begin`` reads it back. A folder has one run at a time (``xpnn.io.lock``).
The checkpoint records every setting that changes the result: the caller's
``settings``, the backend, device and dtype, and the plan's ``log_every`` (which
iterations are read into the history), ``truncate``, ``clip`` and compiler
(``Plan.recorded``); a resumed run with any of them changed is refused.
``checkpoint_every`` may change: a save only copies the state between two iterations
and changes nothing, so where the saves fall never changes the parameters or the
history.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xpnn.backends import device_name
from xpnn.errors import CheckpointError, TrainingDiverged, XpnnTypeError, check_integer, shown
from xpnn.io.atomic import remove_stale_temps
from xpnn.io.lock import FolderLock
from xpnn.training.checkpoint import Checkpoint, NonFiniteParameters, load, optimizer_spec, save
from xpnn.training.loop import fit, starting_state
from xpnn.training.plan import Plan, make_plan
from xpnn.training.state import LogEvent, TrainState


class Checkpointer:
    """Keeps ``folder/checkpoint.npz`` current during a training run.

    Parameters
    ----------
    folder : path
        A writable folder; made (as ``mkdir -p`` would) if it does not exist.
    every : int
        Save after every ``every`` iterations (and at the end).
    settings : dict
        The run's settings as JSON data: a resumed run must have the same ones (the
        backend, device, dtype and the plan's recorded settings are added to them).
    resume : bool
        Continue from the checkpoint in ``folder`` (which must exist); otherwise the
        folder must hold none, so a fresh run never overwrites earlier work.
    """

    FILENAME = "checkpoint.npz"
    TRAIN_OPTIONS = ("log_every", "truncate", "clip", "compile", "chunks")
    """The ``train`` options ``run`` takes; the others are the checkpoint's to set."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        every: int,
        settings: Mapping[str, Any],
        resume: bool = False,
    ) -> None:
        if not isinstance(settings, Mapping):
            msg = f"settings must be a dict of the run's settings, got {shown(settings)}"
            raise XpnnTypeError(msg, argument="settings")
        if not isinstance(resume, bool):
            msg = f"resume must be True or False, got {shown(resume)}"
            raise XpnnTypeError(msg, argument="resume")
        self.folder = check_folder(folder)
        self.every = check_integer(every, "every")
        self.settings, self.resume = dict(settings), resume
        self.path = self.folder / self.FILENAME
        if resume and not self.folder.is_dir():  # refused before a folder is made
            raise CheckpointError(self._nothing_to_resume())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot make the checkpoint folder {str(self.folder)!r}: {exc.strerror or exc}"
            raise CheckpointError(msg, argument="folder") from None
        self.lock = FolderLock(self.folder)

    def _nothing_to_resume(self) -> str:
        return (
            f"nothing to resume: {self.folder} holds no {self.FILENAME}; run once without "
            "--resume to start one"
        )

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
            raise CheckpointError(self._nothing_to_resume())
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
        if not isinstance(state, TrainState):
            msg = f"state must be a TrainState (what train returns), got {type(state).__name__}"
            raise XpnnTypeError(msg, argument="state")
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
        **options: Any,
    ) -> TrainState:
        """``train`` from where the checkpoint left off (or from 0), saving every
        ``every`` iterations and at the end. ``options`` are ``train``'s
        ``TRAIN_OPTIONS``; where the run starts, and ``on_step``, are the checkpoint's.

        Raises
        ------
        TrainingDiverged
            As ``train``; the checkpoint on disk then holds the last finite reading's
            parameters and optimiser state, never NaN.
        """
        foreign = sorted(set(options) - set(self.TRAIN_OPTIONS))
        if foreign:
            msg = (
                f"Checkpointer.run does not take {', '.join(foreign)}: a checkpointed run "
                "starts where its checkpoint left off and saves through its own on_step; it "
                f"takes {', '.join(self.TRAIN_OPTIONS)}"
            )
            raise XpnnTypeError(msg, argument=foreign[0])
        plan = make_plan(model, optimizer, iters=iters, on_step_every=self.every, **options)
        return self.run_plan(plan, model, stream, on_log=on_log)

    def run_plan(
        self,
        plan: Plan,
        model: Any,
        stream: Any,
        *,
        on_log: Callable[[LogEvent], None] | None = None,
        parallel: Any = None,
    ) -> TrainState:
        """``run`` with its settings already made into a ``Plan`` (the command line's),
        on the workers of the ``distributed.Client`` ``parallel`` where given."""
        self.settings = {
            **self.settings,
            "backend": model.backend,
            "device": device_name(model.device),
            "dtype": str(model.dtype).rsplit(".", 1)[-1],
            **plan.recorded(),
        }
        with self.lock:
            begin = self.begin(model, plan.optimizer, plan.iters) or starting_state(
                model, plan, None
            )

            def step(state: TrainState) -> None:
                if state.step < plan.iters:
                    self.save(model, plan.optimizer, state, plan.iters)

            try:
                result = fit(
                    plan, model, stream, begin, parallel=parallel, on_log=on_log, on_step=step
                )
            except TrainingDiverged as exc:  # the loop restored the last finite reading
                if self.path.exists():  # else: diverged before the first save; nothing to fix
                    history = tuple(h for h in exc.history if h[0] < exc.good_step)
                    good = TrainState(exc.good_step, exc.params, exc.state, history)
                    self.save(model, plan.optimizer, good, plan.iters)
                raise
            self.save(model, plan.optimizer, result, plan.iters)
            return result


def check_folder(folder: Any, name: str = "folder") -> Path:
    """``folder`` as a Path: an existing folder this process can write into, or one that
    ``mkdir -p`` can make (its nearest existing ancestor is a writable folder). Nothing
    is made here."""
    if not isinstance(folder, (str, os.PathLike)):
        msg = f"{name} must be a path (a str or pathlib.Path), got {type(folder).__name__}"
        raise XpnnTypeError(msg, argument=name)
    path = Path(folder)
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        msg = f"checkpoint folder {str(path)!r}: {str(ancestor)!r} is not a folder"
        raise CheckpointError(msg, argument=name)
    try:
        fd, probe = tempfile.mkstemp(prefix=".xpnn-write-test.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        msg = f"checkpoint folder {str(ancestor)!r} is not writable ({exc.strerror or exc})"
        raise CheckpointError(msg, argument=name) from None
    return path
