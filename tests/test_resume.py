"""Resuming training from checkpoints: a run killed with SIGKILL (or stopped by an
exception) and resumed ends bit for bit where an uninterrupted one does, divergence leaves
the last finite state on disk, one run owns a folder at a time, and the command line
explains every mistake in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from selection import selected_backends
from xpnn.checkpoint import load

import xpnn
from xpnn import cli
from xpnn.backends import npz
from xpnn.course import notebooks
from xpnn.course.settings import BinaryAddition, Regression, Sine
from xpnn.errors import CheckpointError, TrainingDiverged
from xpnn.io import lock
from xpnn.training import loop
from xpnn.training.resume import Checkpointer

# Small versions of the three notebooks, each with an optimiser that keeps a state.
RUNS = {
    "binary-addition": (
        notebooks.binary_addition,
        BinaryAddition,
        {"iters": 200, "bits": 4, "hidden_size": 6, "lr": 0.5},
    ),
    "regression": (
        notebooks.regression,
        Regression,
        {"iters": 200, "hidden_size": 5, "lr": 0.02, "n_samples": 500},
    ),
    "sine": (notebooks.sine, Sine, {"iters": 200, "lr": 0.1, "n_generate": 5}),
}
OPTIMIZERS = {
    "momentum": {"momentum": 0.5},
    "rmsprop": {"optimizer": "rmsprop", "lr": 0.01},
    "adam": {"optimizer": "adam", "lr": 0.01},  # its step count is state too
}


def _go(run: str, *, echo=None, **changes):
    """Run notebook ``run`` with its small settings changed by ``changes``."""
    fn, kind, settings = RUNS[run]
    return fn(kind(**{**settings, **changes}), echo=echo)


class Interrupt(Exception):
    """Stands for the process being stopped half way."""


def _stop_at(iteration: int):
    """An ``echo`` that interrupts the run at the reading of ``iteration``."""

    def echo(text: str) -> None:
        if text.startswith(f"iters:{iteration}\n") or text.startswith(f"iters:{iteration} "):
            raise Interrupt(text)

    return echo


def _bits(arrays: dict) -> dict:
    return {k: np.ascontiguousarray(xpnn.to_numpy(a)).tobytes() for k, a in arrays.items()}


def _final(folder: Path, backend=None):
    return load(folder / "checkpoint.npz", **({} if backend is None else {"backend": backend}))


@pytest.mark.parametrize(
    ("run", "optimizer"),
    [
        # on JAX the step compiles, and the saves cut its fused spans elsewhere
        pytest.param("binary-addition", "adam", marks=pytest.mark.jax_covering),
        ("regression", "momentum"),
        ("sine", "rmsprop"),
    ],
)
def test_an_interrupted_run_resumes_bit_exactly(tmp_path, backend, device, run, optimizer):
    """Stopped at iteration 150 (the last checkpoint is 100) and resumed: the parameters,
    the optimiser's state, the history and the measures are those of the run that was
    never stopped, and of the run that keeps no checkpoint at all."""
    kw = {"log_every": 50, "backend": backend, "device": device, **OPTIMIZERS[optimizer]}
    plain = _go(run, **kw)
    whole = _go(run, **kw, checkpoint=tmp_path / "whole", checkpoint_every=7)
    part = tmp_path / "part"
    with pytest.raises(Interrupt):
        _go(run, **kw, echo=_stop_at(150), checkpoint=part, checkpoint_every=100)
    assert _final(part).step == 100
    resumed = _go(run, **kw, checkpoint=part, checkpoint_every=100, resume=True)
    assert _bits(resumed.model.params) == _bits(whole.model.params) == _bits(plain.model.params)
    assert _bits(resumed.train.opt_state) == _bits(plain.train.opt_state)
    assert resumed.train.history == whole.train.history == plain.train.history
    assert resumed.metrics == whole.metrics
    a, b = _final(part, backend), _final(tmp_path / "whole", backend)
    assert a.step == b.step == RUNS[run][2]["iters"]
    assert _bits(a.optimizer_state) == _bits(b.optimizer_state) != {}
    assert a.history == b.history


def test_resuming_without_the_optimizer_state_would_differ(tmp_path, monkeypatch):
    """The check above can fail: drop Momentum's velocity on resume and the run ends
    elsewhere."""
    kw = {"log_every": 50, **OPTIMIZERS["momentum"]}
    whole = _go("binary-addition", **kw)
    with pytest.raises(Interrupt):
        _go("binary-addition", **kw, echo=_stop_at(150), checkpoint=tmp_path, checkpoint_every=100)
    begin = Checkpointer.begin

    def begin_without_state(self, *args):
        resumed = begin(self, *args)
        zeros = {key: value * 0.0 for key, value in resumed.opt_state.items()}  # init's
        return dataclasses.replace(resumed, opt_state=zeros)

    monkeypatch.setattr(Checkpointer, "begin", begin_without_state)
    resumed = _go("binary-addition", **kw, checkpoint=tmp_path, checkpoint_every=100, resume=True)
    assert _bits(resumed.model.params) != _bits(whole.model.params)


# -- SIGKILL: the command in a process of its own --------------------------------------------

KILLED = ["train", "binary-addition", "--bits", "4", "--hidden-size", "8", "--seed", "3"]
KILLED += ["--iters", "2000", "--log-every", "50", "--json", "--quiet"]
SLOW = pytest.mark.slow
KILLED_RUNS = [
    pytest.param("numpy", ["--momentum", "0.5"], id="rnn-momentum"),
    pytest.param(
        "numpy", ["--cell", "lstm", "--optimizer", "adam", "--lr", "0.01"], id="lstm-adam"
    ),
    # the compiled step's fused spans end at every save; slow: the compiles of three
    # processes (test_an_interrupted_run_resumes_bit_exactly resumes it in the default run)
    pytest.param("jax", ["--compile", "on", "--momentum", "0.5"], id="jax", marks=SLOW),
]


def _kill_when(folder: Path, args: list[str], beyond: int) -> int:
    """Start ``xpnn`` with ``args``, SIGKILL it once its checkpoint is past iteration
    ``beyond``; return the checkpoint's iteration after the kill."""
    path = folder / "checkpoint.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpnn", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if load(path).step > beyond:
                    break
            except CheckpointError:  # not written yet
                pass
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err}"
    return load(path).step


@pytest.mark.parametrize(("backend", "options"), KILLED_RUNS, indirect=["backend"])
def test_sigkill_then_resume_ends_where_an_uninterrupted_run_does(
    tmp_path, backend, options, capsys
):
    """``xpnn train`` in a process of its own, saving after every iteration, is killed
    with SIGKILL twice (most kills land inside a save and leave its temporary file), then
    resumed saving every 100 iterations: its checkpoint (parameters, optimiser state,
    history) and its summary are the uninterrupted run's, bit for bit, and no temporary
    file is left. A gated cell and the compiled JAX step are the cases that differ."""
    if backend not in selected_backends():
        pytest.skip(f"runs in the {backend} session (XPNN_BACKENDS={backend})")
    args = [*KILLED, "--backend", backend, *options]
    reference = tmp_path / "reference"
    assert cli.main([*args, "--checkpoint", str(reference)]) == 0
    want = json.loads(capsys.readouterr().out)
    folder = tmp_path / "run"
    saving = [*args, "--checkpoint", str(folder), "--checkpoint-every", "1"]
    step = _kill_when(folder, saving, beyond=20)
    step = _kill_when(folder, [*saving, "--resume"], beyond=step + 20)
    assert 20 < step < 2000
    resume = [*args, "--checkpoint", str(folder), "--checkpoint-every", "100", "--resume"]
    assert cli.main(resume) == 0
    got = json.loads(capsys.readouterr().out)
    assert [p.name for p in folder.iterdir()] == ["checkpoint.npz"]  # temporary files cleared
    a, b = load(folder / "checkpoint.npz"), load(reference / "checkpoint.npz")
    assert a.step == b.step == 2000
    assert _bits(a.model.params) == _bits(b.model.params)
    assert _bits(a.optimizer_state) == _bits(b.optimizer_state) != {}
    assert a.history == b.history
    for key in ("losses", "exact", "total", "eval_loss"):
        assert got[key] == want[key], key


# -- divergence ---------------------------------------------------------------------------

# notebook 1_3 with a learning rate of 5: the loss is finite at 200 and infinite at 300
DIVERGING = {"iters": 1000, "lr": 5.0, "n_samples": 2000, "momentum": 0.5}


@pytest.mark.jax_covering  # a compiled step may hide NaN (XLA's relu(NaN) is 0)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings
def test_divergence_leaves_the_last_finite_state_on_disk(tmp_path, backend, device):
    kw = {**DIVERGING, "backend": backend, "device": device}
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        notebooks.regression(Regression(**kw, checkpoint=tmp_path, checkpoint_every=1), echo=None)
    exc = info.value
    last = exc.history[-1][0]  # the last finite reading
    assert last < exc.iteration
    saved = load(tmp_path / "checkpoint.npz", backend=backend, device=device)
    assert saved.step == last
    assert _bits(saved.model.params) == _bits(exc.params)
    assert all(np.all(np.isfinite(xpnn.to_numpy(p))) for p in saved.model.params.values())
    assert saved.history == [h for h in exc.history if h[0] < last]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]
    # the same state as a run stopped there on purpose, velocity included
    ref = tmp_path / "ref"
    with np.errstate(all="ignore"):
        notebooks.regression(Regression(**{**kw, "iters": last}, checkpoint=ref), echo=None)
    stopped = load(ref / "checkpoint.npz", backend=backend, device=device)
    assert _bits(stopped.model.params) == _bits(saved.model.params)
    assert _bits(stopped.optimizer_state) == _bits(saved.optimizer_state)


def test_a_non_finite_last_update_is_caught_at_the_final_save(
    tmp_path, backend, device, monkeypatch
):
    """The loop reads the loss before the last update, so a NaN made by that update is
    only seen when the final checkpoint is written: the file keeps the last finite state."""
    original = loop.build_step

    def build_step(*args):
        step, calls = original(*args), []

        def poisoned(params, state, x, d):
            calls.append(1)
            params, state, loss = step.unchecked(params, state, x, d)
            if len(calls) == 50:
                params = {k: p * float("nan") for k, p in params.items()}
            return params, state, loss

        # one call per iteration (no fused loop of a compiled JAX step)
        return types.SimpleNamespace(
            compiled=step.compiled, loop=lambda *_: None, unchecked=poisoned
        )

    monkeypatch.setattr(loop, "build_step", build_step)
    kw = {"iters": 50, "log_every": 10, "n_samples": 100}
    with pytest.raises(TrainingDiverged, match="after the last iteration") as info:
        notebooks.regression(
            Regression(**kw, backend=backend, device=device, checkpoint=tmp_path), echo=None
        )
    saved = load(tmp_path / "checkpoint.npz", backend=backend, device=device)
    assert saved.step == 49 == info.value.history[-1][0]
    assert _bits(saved.model.params) == _bits(info.value.params)
    assert all(np.all(np.isfinite(xpnn.to_numpy(p))) for p in saved.model.params.values())


def _main(capsys, *args: str) -> tuple[int, str]:
    """``xpnn ARGS`` in this process: its exit status and its one line on stderr."""
    try:
        code = cli.main(list(args))
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return code, err


def test_cli_divergence_is_one_clear_message(tmp_path, capsys):
    argv = ["train", "regression", "--lr", "5", "--quiet"]
    code, err = _main(capsys, *argv, "--checkpoint", str(tmp_path), "--checkpoint-every", "1")
    assert code == 1
    assert err.startswith("xpnn: training diverged: the loss at iteration 300 is inf")
    assert f"{tmp_path / 'checkpoint.npz'} holds the last finite state (iteration 200)" in err
    assert "Try a lower --lr than 5" in err
    saved = load(tmp_path / "checkpoint.npz")
    assert saved.step == 200
    assert all(np.all(np.isfinite(xpnn.to_numpy(p))) for p in saved.model.params.values())


def test_cli_divergence_of_the_relu_rnn(tmp_path, capsys):
    """Notebook 3_1 with ReLU and huge initial weights overflows at once."""
    argv = ["train", "binary-addition", "--activation", "relu", "--weight-init-std", "1e36"]
    code, err = _main(capsys, *argv, "--iters", "300", "--checkpoint", str(tmp_path), "--quiet")
    assert code == 1
    assert "training diverged: the loss at iteration 0 is nan" in err
    assert "--clip 1.0" in err and "--weight-init-std" in err
    assert list(tmp_path.iterdir()) == []  # nothing finite was reached: nothing written


# -- command-line mistakes ----------------------------------------------------------------

SMALL = [
    "train",
    "binary-addition",
    "--iters",
    "120",
    "--bits",
    "4",
    "--hidden-size",
    "4",
    "--quiet",
]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_cli_refuses_a_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, err = _main(capsys, *SMALL, "--checkpoint", str(folder))
    finally:
        folder.chmod(0o700)
    assert code == 2 and "not writable" in err


def test_cli_resume_mistakes(tmp_path, capsys):
    assert cli.main([*SMALL, "--checkpoint", str(tmp_path), "--checkpoint-every", "50"]) == 0
    assert load(tmp_path / "checkpoint.npz").step == 120
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path))
    assert code == 1 and "already holds a checkpoint" in err and "--resume" in err
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path), "--resume", "--lr", "0.2")
    assert code == 1 and "lr=0.1" in err and "lr=0.2" in err
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path), "--resume", "--iters", "60")
    assert code == 1 and "past iters=60" in err
    data = (tmp_path / "checkpoint.npz").read_bytes()
    (tmp_path / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path), "--resume")
    assert code == 1 and str(tmp_path / "checkpoint.npz") in err and "truncated" in err


def test_library_resume_mistakes(tmp_path):
    kw = {"iters": 20}
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _go("sine", **kw, checkpoint=tmp_path, resume=True)
    with pytest.raises(xpnn.XpnnValueError) as info:
        _go("sine", **kw, resume=True)
    assert info.value.argument == "checkpoint"
    _go("sine", **kw, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match=r"hidden_size=5.*hidden_size=4"):
        _go("sine", **{**kw, "hidden_size": 4}, checkpoint=tmp_path, resume=True)


def test_resume_refuses_a_changed_backend_or_log_every(tmp_path, capsys):
    first = [*SMALL, "--checkpoint", str(tmp_path), "--log-every", "20"]
    assert cli.main(first) == 0
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path), "--resume")
    assert code == 1 and "log_every=20" in err and "log_every=100" in err
    code, err = _main(capsys, *first, "--resume", "--backend", "array_api_strict")
    assert code == 1 and "backend='numpy'" in err and "backend='array_api_strict'" in err
    code, err = _main(capsys, *first, "--resume", "--dtype", "float32")
    assert code == 1 and "dtype" in err
    # checkpoint_every may change: where saves fall never changes the result
    assert cli.main([*first, "--resume", "--checkpoint-every", "7"]) == 0
    saved = load(tmp_path / "checkpoint.npz")
    assert saved.extra["checkpoint_every"] == 7
    assert saved.extra["settings"]["backend"] == "numpy"
    assert saved.extra["settings"]["log_every"] == 20


# -- one owner per folder -----------------------------------------------------------------

HOLD = """
import sys, time
from xpnn.io.lock import FolderLock
lock = FolderLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder: Path) -> subprocess.Popen:
    """A live process that holds ``folder``'s lock until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_refuses_a_second_run_and_keeps_its_temp_files(tmp_path, capsys):
    """A second run (fresh or --resume) is refused with the holder's pid, and deletes
    neither the holder's lock nor its in-flight temporary checkpoint."""
    assert cli.main([*SMALL, "--checkpoint", str(tmp_path)]) == 0
    holder = _holder(tmp_path)
    try:
        temp = tmp_path / f".checkpoint.npz.{holder.pid}@{lock.HOST}.abc123.tmp"
        temp.write_bytes(b"half a save")
        for extra in ([], ["--resume"]):
            code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path), *extra)
            assert code == 1 and f"in use by another xpnn run (pid {holder.pid}" in err
            assert temp.read_bytes() == b"half a save"
            assert (tmp_path / lock.FolderLock.NAME).exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the holder is gone: its lock and its temporary file are recovered
    assert cli.main([*SMALL, "--checkpoint", str(tmp_path), "--resume"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_stale_locks_and_temp_files_of_dead_processes_are_recovered(tmp_path):
    dead = _dead_pid()
    info = {"pid": dead, "host": lock.HOST, "started": time.time()}
    (tmp_path / lock.FolderLock.NAME).write_text(json.dumps(info))
    stale = tmp_path / f".checkpoint.npz.{dead}@{lock.HOST}.xyz.tmp"
    foreign = tmp_path / f".checkpoint.npz.{dead}@another-host.xyz.tmp"
    unknown = tmp_path / ".checkpoint.npz.someone.tmp"
    for temp in (stale, foreign, unknown):
        temp.write_bytes(b"?")
    assert cli.main([*SMALL, "--checkpoint", str(tmp_path)]) == 0
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["checkpoint.npz", foreign.name, unknown.name])


def test_a_lock_from_another_host_is_never_broken(tmp_path, capsys):
    info = {"pid": _dead_pid(), "host": "another-host", "started": 0}
    (tmp_path / lock.FolderLock.NAME).write_text(json.dumps(info))
    code, err = _main(capsys, *SMALL, "--checkpoint", str(tmp_path))
    assert code == 1 and "on another-host" in err and "remove" in err
    assert not (tmp_path / "checkpoint.npz").exists()


def test_the_lock_in_one_process(tmp_path):
    first, second = lock.FolderLock(tmp_path), lock.FolderLock(tmp_path)
    with first:
        with pytest.raises(CheckpointError, match=f"pid {os.getpid()}"):
            second.acquire()
        assert first.held and not second.held
    assert not (tmp_path / lock.FolderLock.NAME).exists()
    with second:  # released: free again
        assert second.held


@pytest.mark.parametrize(
    "trial", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_two_fresh_runs_started_together_exactly_one_proceeds(tmp_path, trial):
    args = [*KILLED[:-2], "--iters", "300", "--json", "--quiet"]
    args += ["--checkpoint", str(tmp_path), "--checkpoint-every", "10"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xpnn", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(code for _, _, code in outcomes)
    assert codes == [0, 1], outcomes
    out = next(o for o, _, code in outcomes if code == 0)
    refused = next(e for _, e, code in outcomes if code == 1)
    assert "in use by another xpnn run" in refused or "already holds a checkpoint" in refused
    saved = load(tmp_path / "checkpoint.npz")
    assert saved.history == [tuple(h) for h in json.loads(out)["losses"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


# -- a full disk --------------------------------------------------------------------------


def _disk_full_after_half(file, contents):
    """``npz.write`` on a disk that fills up half way through the archive."""
    file.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("resume", [False, True])
def test_cli_on_a_full_disk_says_so_in_one_line_and_keeps_the_checkpoint(
    tmp_path, capsys, monkeypatch, resume
):
    """Fresh or resumed: exit 1, one line naming the checkpoint (its folder) and the
    cause, the previous checkpoint byte for byte, no temporary file."""
    short = [a if a != "120" else "60" for a in SMALL]
    if resume:
        assert cli.main([*short, "--checkpoint", str(tmp_path)]) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    data = (tmp_path / "checkpoint.npz").read_bytes() if resume else None
    monkeypatch.setattr(npz, "write", _disk_full_after_half)
    extra = ["--resume"] if resume else []
    folder = ["--checkpoint", str(tmp_path), "--checkpoint-every", "50"]
    code, err = _main(capsys, *SMALL, *folder, *extra)
    assert code == 1
    assert f"cannot write the checkpoint {tmp_path / 'checkpoint.npz'}" in err
    assert "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if resume:
        assert (tmp_path / "checkpoint.npz").read_bytes() == data


def test_a_lock_that_cannot_be_written_is_given_back(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")

    folder_lock = lock.FolderLock(tmp_path)
    monkeypatch.setattr(lock.os, "write", full)
    with pytest.raises(CheckpointError, match=r"cannot write the lock .*No space left"):
        folder_lock.acquire()
    monkeypatch.undo()
    assert not folder_lock.held and list(tmp_path.iterdir()) == []
