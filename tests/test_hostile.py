"""Hostile and careless input that is not a bad argument (those are ``test_errors.py``'s).

* Hostile checkpoint files (truncated, bit-flipped, zip bombs, nested or mistyped
  metadata, pickle payloads, path traversal names, optimiser state no run reaches, a step
  behind its history): each is refused with a ``CheckpointError`` naming the file;
  nothing runs, nothing is written, and a zip bomb costs no memory.
* Hostile callbacks: ``on_step`` gets a snapshot, so a callback that pops, clears or
  replaces what it is given changes nothing of the run, and on NumPy cannot write into
  the run's arrays.
* Careless but valid input: NumPy integers where Python ones are expected.
* A resumed run reads its loss where an uninterrupted one does.
* Crash and resume (``slow``): a training subprocess SIGKILLed at random moments (many
  inside a save) and resumed ends bit for bit where an uninterrupted run does.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.errors import CheckpointError
from xpnn.optim import SGD, AdaGrad, Adam, Momentum, RMSProp
from xpnn.training import checkpoint
from xpnn.training.checkpoint import load, save
from xpnn.training.loop import train
from xpnn.training.state import TrainState

MAX_MESSAGE = 400  # fixed text plus at most ~80 characters of each value shown, and the path
LONG = "s" * 5000


def _bits(params: dict) -> dict:
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in params.items()}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"/"
        for p in sorted(folder.rglob("*"))
    }


def _refused(call: Any) -> CheckpointError:
    """``call()`` raises a ``CheckpointError`` naming the file, with a bounded message."""
    with pytest.raises(CheckpointError) as info:
        call()
    message = str(info.value)
    assert len(message) <= MAX_MESSAGE + 200, f"{len(message)} characters: {message[:200]}..."
    assert "Traceback" not in message
    return info.value


# -- hostile checkpoint files -----------------------------------------------------------------


@pytest.fixture
def good(tmp_path) -> Path:
    """A real checkpoint of a Momentum-trained MLP with every velocity present."""
    net = xpnn.MLP([3, 5, 2], hidden="tanh", seed=1)
    opt = xpnn.Momentum(0.1, 0.9)
    x, d = net.asarray(np.ones((4, 3))), net.asarray(np.eye(2)[[0, 1, 0, 1]])
    state = opt.init(net.params)
    for _ in range(2):
        net.params, state = opt.update(net.params, net.loss_and_grad(x, d)[1], state)
    extra = {"settings": {"run": "x"}}
    return save(tmp_path / "ckpt.npz", net, opt, 2, [(0, 1.0)], extra, state=state)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _meta(path: Path) -> dict:
    return json.loads(str(np.load(io.BytesIO(_members(path)["meta.npy"]))[()]))


def _forge(path: Path, meta: dict | str, arrays: dict | None = None) -> None:
    """Rewrite ``path`` with ``meta`` (and changed ``arrays``) under a valid checksum."""
    with np.load(path) as npz:
        current = {k: npz[k] for k in npz.files if k not in ("meta", "sha256")}
    current.update(arrays or {})
    text = meta if isinstance(meta, str) else json.dumps(meta)
    digest = checkpoint._digest(text, current)
    np.savez(path, **current, meta=np.array(text), sha256=np.array(digest))


class Payload:
    """Pickled, it would create ``target`` when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def _paths(value, prefix=()):
    """Every (path, value) of a JSON document, depth first."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(doc, path, value):
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


WRONG_TYPES = {
    "list": ["x"],
    "dict": {"x": 1},
    "string": "x",
    "null": None,
    "huge int": 10**400,
    "bool": True,
    "negative": -1,
    "float": 0.5,
}


def test_every_metadata_entry_of_every_wrong_type_is_refused(good):
    """Each entry of the metadata, replaced in turn by a value of each wrong type (under a
    fresh checksum), is refused or (free-form ``extra`` data, one number for another, a
    null where the schema allows one) loads the same parameters: never a raw error."""
    meta = _meta(good)
    original = load(good)
    members = _members(good)
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in ("meta", "sha256")}
    checks = refused = 0
    for path, value in list(_paths(meta)):
        for wrong in WRONG_TYPES.values():
            if wrong == value and type(wrong) is type(value):
                continue
            text = json.dumps(_set(meta, path, wrong))  # _forge's file, from members read once
            digest = checkpoint._digest(text, arrays)
            forged = {"meta.npy": _npy(np.array(text)), "sha256.npy": _npy(np.array(digest))}
            _write(good, {**members, **forged})
            checks += 1
            try:
                loaded = load(good)
            except CheckpointError as exc:
                refused += 1
                assert len(str(exc)) <= MAX_MESSAGE + len(str(good))
                continue
            # accepted: the caller's free-form data, or one number for another
            numbers = all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, wrong)
            )
            nullable = path[-1:] in (("init",), ("weight_init_std",), ("seed",)) and wrong is None
            scale = path[-1:] == ("init_scale",) and wrong == 0.5  # how the weights were drawn
            assert path[:1] == ("extra",) or numbers or nullable or scale, (path, wrong)
            assert _bits(loaded.model.params) == _bits(original.model.params)
    assert checks >= 300 and refused >= 250, (checks, refused)


def _zip_bomb(path: Path, n: int = 5_000_000) -> None:
    """``param.W1`` replaced by ``n`` float64 zeros (40 MB, twice the memory the refusal
    may take) deflated to about 40 kB"""
    members = _members(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in members.items():
            if name != "param.W1.npy":
                z.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        with z.open("param.W1.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f8", "fortran_order": False, "shape": (n,)}
            np.lib.format.write_array_header_1_0(f, header)
            chunk, left = bytes(2**22), n * 8
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))


def _lying_sizes(path: Path) -> None:
    """A stored member whose central directory entry claims 1.1 GB."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        start = z.start_dir
    pos = data.find(b"PK\x01\x02", start)
    while data[pos + 46 : pos + 46 + len(b"param.W1.npy")] != b"param.W1.npy":
        pos = data.find(b"PK\x01\x02", pos + 4)
    for field in (20, 24):  # compressed and uncompressed size
        data[pos + field : pos + field + 4] = (1_100_000_000).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _consistent_bomb(path: Path) -> None:
    """A bomb whose metadata and configuration agree with it: a 2 x 2,500,000 layer."""
    meta = _meta(path)
    n = 2_500_000
    meta["model"]["sizes"] = [2, n]
    meta["arrays"] = {
        "param.W1": {"shape": [2, n], "dtype": "<f8"},
        "param.b1": {"shape": [n], "dtype": "<f8"},
    }
    meta["optimizer"] = None
    text = json.dumps(meta)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.npy", _npy(np.array(text)))
        z.writestr("sha256.npy", _npy(np.array("0" * 64)))
        for key, shape in (("param.W1", (2, n)), ("param.b1", (n,))):
            with z.open(key + ".npy", "w", force_zip64=True) as f:
                header = {"descr": "<f8", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(f, header)
                chunk, left = bytes(2**22), int(np.prod(shape)) * 8
                while left:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))


BOMBS = {"zip bomb": _zip_bomb, "lying sizes": _lying_sizes, "consistent bomb": _consistent_bomb}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_zip_bombs_are_refused_before_inflating(good, bomb):
    BOMBS[bomb](good)
    tracemalloc.start()
    try:
        _refused(lambda: load(good))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB while refusing a {bomb}"


def _pickled_member(target: Path):
    def spoil(path: Path) -> None:
        members = _members(path)
        members["param.W1.npy"] = _npy(np.array([Payload(target)], dtype=object))
        _write(path, members)

    return spoil


def _pickled_meta(target: Path):
    def spoil(path: Path) -> None:
        members = _members(path)
        members["meta.npy"] = _npy(np.array([Payload(target)], dtype=object))
        _write(path, members)

    return spoil


def _pickle_file(target: Path):
    def spoil(path: Path) -> None:
        path.write_bytes(pickle.dumps(Payload(target)))

    return spoil


def _traversal(name: str):
    def spoil(path: Path) -> None:
        members = _members(path)
        members[name] = members.pop("param.b1.npy")
        _write(path, members)

    return spoil


def _state_change(change):
    def spoil(path: Path) -> None:
        meta = _meta(path)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k not in ("meta", "sha256")}
        change(meta, arrays)
        meta["arrays"] = {
            k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()
        }
        text = json.dumps(meta)
        digest = checkpoint._digest(text, arrays)
        np.savez(path, **arrays, meta=np.array(text), sha256=np.array(digest))

    return spoil


def _array(key: str, change):
    """A ``_state_change`` that replaces the array ``key`` by ``change(array)``."""
    return lambda meta, arrays: arrays.update({key: change(arrays[key])})


def _nested(depth: int, opener: str = "[", closer: str = "]"):
    def spoil(path: Path) -> None:
        _forge(path, opener * depth + closer * depth)

    return spoil


def _hostile_files(tmp: Path) -> dict:
    target = tmp / "PWNED"
    files = {
        "pickled member": _pickled_member(target),
        "pickled meta": _pickled_meta(target),
        "pickle file": _pickle_file(target),
        "nested list 100000": _nested(100_000),
        "nested dict 100000": _nested(100_000, '{"a":', "}"),
        "nested 50": _nested(50),
        "NaN velocity": _state_change(_array("optim.v.W1", lambda v: v * np.nan)),
        "inf velocity": _state_change(_array("optim.v.b2", lambda v: v + np.inf)),
        "missing velocity": _state_change(lambda m, a: a.pop("optim.v.W2")),
        "extra velocity": _state_change(lambda m, a: a.update({"optim.v.W9": a["optim.v.W1"]})),
        "velocity wrong shape": _state_change(lambda m, a: a.update({"optim.v.b1": np.zeros(2)})),
        "state for SGD": _state_change(
            lambda m, a: m.update({"optimizer": {"name": "sgd", "lr": 0.1}})
        ),
        "extra hyperparameter": _state_change(lambda m, a: m["optimizer"].update({"beta": 0.9})),
        "list hyperparameter": _state_change(lambda m, a: m["optimizer"].update({"lr": [0.1]})),
        "huge hyperparameter": _state_change(lambda m, a: m["optimizer"].update({"lr": 10**400})),
        "list activation": _state_change(lambda m, a: m["model"].update({"hidden": ["tanh"]})),
        "dict loss": _state_change(lambda m, a: m["model"].update({"loss": {"mse": 1}})),
        "long activation": _state_change(lambda m, a: m["model"].update({"hidden": LONG})),
        "huge size": _state_change(lambda m, a: m["model"].update({"sizes": [3, 10**30, 2]})),
        "string sizes": _state_change(lambda m, a: m["model"].update({"sizes": ["3", "5", "2"]})),
        "bias as string": _state_change(lambda m, a: m["model"].update({"model": "RNN"})),
        "complex parameter": _state_change(lambda m, a: a.update({"param.W1": a["param.W1"] + 1j})),
        "int parameter": _state_change(lambda m, a: a.update({"param.b1": np.zeros(5, int)})),
        "history strings": _state_change(lambda m, a: m.update({"history": [["0", "1.0"]]})),
        "history nan": _state_change(lambda m, a: m.update({"history": [[0, float("nan")]]})),
        "step huge": _state_change(lambda m, a: m.update({"step": -(10**400)})),
    }
    for name in ("../../evil.npy", "/tmp/evil.npy", "..\\evil.npy", "a/../../b.npy", "C:evil.npy"):
        files[f"member named {name}"] = _traversal(name)
    return files


HOSTILE = list(_hostile_files(Path("/nonexistent")))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_checkpoint_files(good, tmp_path, case, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a traversal write would land here, under tmp_path
    spoil = _hostile_files(tmp_path)[case]
    with np.errstate(all="ignore"):
        try:
            spoil(good)
        except (OverflowError, ValueError) as exc:  # JSON cannot even write this
            pytest.skip(f"the hostile file cannot be written: {exc}")
    before = _files(tmp_path)
    _refused(lambda: load(good))
    assert not (tmp_path / "PWNED").exists(), "a pickle payload ran"
    assert _files(tmp_path) == before, "load wrote a file"


def _damage_sweep(good: Path, positions, change) -> tuple[int, int]:
    """``(refused, harmless)`` over damaged copies of ``good``; any other outcome fails."""
    data = good.read_bytes()
    original = _bits(load(good).model.params)
    refused = harmless = 0
    for pos in positions:
        good.write_bytes(change(data, pos))
        try:
            loaded = load(good)
        except CheckpointError as exc:
            assert len(str(exc)) <= MAX_MESSAGE + len(str(good))
            refused += 1
        else:  # a byte the checksum does not cover (zip padding, a timestamp)
            assert _bits(loaded.model.params) == original
            harmless += 1
    return refused, harmless


def test_truncated_at_every_hundredth_byte(good):
    size = good.stat().st_size
    refused, harmless = _damage_sweep(good, range(0, size, 100), lambda d, p: d[:p])
    assert harmless == 0 and refused == len(range(0, size, 100))


def test_bit_flips_every_fiftieth_byte(good):
    size = good.stat().st_size

    def flip(data: bytes, pos: int) -> bytes:
        out = bytearray(data)
        out[pos] ^= 1 << (pos % 8)
        return bytes(out)

    refused, harmless = _damage_sweep(good, range(0, size, 50), flip)
    assert refused + harmless == len(range(0, size, 50)) and refused > harmless


def _spoiled(opt: Any, params: dict, key: str, value: float) -> dict:
    """``opt.init(params)`` with state array ``key`` filled with ``value``."""
    state = opt.init(params)
    return {**state, key: np.full(state[key].shape, value)}


def test_optimizer_state_no_run_reaches_is_refused_at_load(tmp_path):
    """Finite state values no run of the optimiser reaches (a step count below zero or
    not whole, squared gradients below zero), saved and loaded: refused, naming the file
    and the state array."""
    net = xpnn.RNN(2, 4, 1, seed=0)
    cases = [(Adam, "t", -3.0), (Adam, "t", 2.5), (Adam, "v.W", -1.0)]
    cases += [(RMSProp, "h.W", -1.0), (AdaGrad, "h.W", -1.0)]
    for n, (cls, key, value) in enumerate(cases):
        opt = cls(0.1)
        path = save(tmp_path / f"{n}.npz", net, opt, 3, state=_spoiled(opt, net.params, key, value))
        before = _files(tmp_path)
        message = str(_refused(functools.partial(load, path)))
        assert message.startswith(f"{path}: ") and f"state[{key!r}]" in message, message
        assert _files(tmp_path) == before


def _set_step(path: Path, step: int) -> None:
    """Rewrite the checkpoint's step, with a fresh checksum: a well-formed file."""
    meta = _meta(path)
    meta["step"] = step
    _forge(path, meta)


def test_a_step_behind_its_history_is_refused_at_load(tmp_path):
    net = xpnn.MLP([2, 3, 2], seed=0)
    path = save(tmp_path / "b.npz", net, Adam(), step=10, history=[(0, 1.0), (10, 0.5)])
    assert load(path).step == 10  # a divergence's: a reading at the step reached
    _set_step(path, 3)
    message = str(_refused(lambda: load(path)))
    assert message.startswith(f"{path}: ") and "history" in message


# -- hostile callbacks ------------------------------------------------------------------------


def _run(on_step: Any = None, on_log: Any = None) -> TrainState:
    x, d = datasets.linear(40, seed=0)
    net = xpnn.MLP([2, 4, 1], hidden="tanh", output="identity", loss="mse", seed=0)
    stream = datasets.SampleStream(x, d, 4, seed=0)
    return train(net, Momentum(0.1), stream, iters=8, log_every=3, on_step=on_step, on_log=on_log)


def _pop(state: TrainState) -> None:
    state.params.pop("W1")


def _clear(state: TrainState) -> None:
    state.opt_state.clear()


def _replace(state: TrainState) -> None:
    state.params["W1"] = np.ones((7, 7))  # the wrong shape
    state.opt_state["v.b1"] = np.full(4, np.nan)


def _pop_logged(event: xpnn.LogEvent) -> None:
    event.params.clear()


def test_a_callback_that_changes_its_snapshot_changes_nothing_of_the_run():
    reference = _run()
    for on_step, on_log in ((_pop, None), (_clear, None), (_replace, None), (None, _pop_logged)):
        got = _run(on_step, on_log)
        assert _bits(got.params) == _bits(reference.params), (on_step, on_log)
        assert _bits(got.opt_state) == _bits(reference.opt_state), (on_step, on_log)
        assert got.history == reference.history


def test_a_callback_cannot_write_into_the_runs_arrays():
    """On NumPy the snapshot's arrays are read-only views of the run's."""

    def write(state: TrainState) -> None:
        state.params["W1"][0, 0] = 5.0

    def write_state(state: TrainState) -> None:
        state.opt_state["v.W1"][...] = 0.0

    for callback in (write, write_state):
        with pytest.raises(ValueError, match="read-only"):
            _run(on_step=callback)


# -- careless but valid input -----------------------------------------------------------------


def test_batch_rows_takes_numpy_integers():
    """An iteration and rows given as NumPy integers (a loop over ``np.arange``) give the
    rows that Python integers give."""
    for stream in (datasets.BinaryAdditionStream(8), datasets.AddingProblemStream(8, steps=6)):
        for i, lo, hi in ((5, 0, 8), (130, 2, 7)):
            want = stream.batch_rows(i, lo, hi)
            for kind in (np.int64, np.int32, np.uint16):
                got = stream.batch_rows(kind(i), kind(lo), kind(hi))
                for a, b in zip(got, want, strict=True):
                    np.testing.assert_array_equal(a, b)


# -- a resumed run's readings -----------------------------------------------------------------


def test_a_resumed_run_reads_at_multiples_of_log_every_and_its_last_iteration():
    """Resumed at step 6 with ``log_every=4`` and ``iters=10``: readings at 8 (a
    multiple) and 9 (the last iteration), not at 6 (where it resumed)."""
    x, d = datasets.linear(40, seed=0)
    net = xpnn.MLP([2, 4, 1], output="identity", loss="mse", seed=0)
    stream = datasets.SampleStream(x, d, 4, seed=0)
    first = train(net, SGD(0.1), stream, iters=6, log_every=4)
    assert [i for i, _loss in first.history] == [0, 4, 5]
    begin = TrainState(6, first.params, first.opt_state, first.history)
    run = train(net, SGD(0.1), stream, iters=10, resume_from=begin, log_every=4)
    assert [i for i, _loss in run.history] == [0, 4, 5, 8, 9]
    assert run.history[:3] == first.history


# -- crash and resume ------------------------------------------------------------------------

RUN = ["train", "binary-addition", "--seed", "5", "--momentum", "0.5", "--json", "--quiet"]
ITERS = 600


def _xpnn(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xpnn", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, checkpoint.Checkpoint]:
    folder = tmp_path_factory.mktemp("reference")
    proc = _xpnn([*RUN, "--iters", str(ITERS), "--checkpoint", str(folder)])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), load(folder / "checkpoint.npz")


def _step(path: Path) -> int:
    try:
        return load(path).step
    except CheckpointError:  # not written yet
        return 0


def _kill_at(args: list[str], path: Path, target: int, delay: float) -> bool:
    """Start a run, SIGKILL it ``delay`` seconds after its checkpoint reaches ``target``
    (saving every iteration, many kills land inside a save); whether the kill landed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpnn", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and _step(path) < target and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    landed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return landed


def _crash_and_resume(folder: Path, reference, rng: np.random.Generator, kills: int) -> None:
    """Run; SIGKILL at a random moment; resume ... ``kills`` times; then finish: the
    result must equal the uninterrupted reference bit for bit."""
    args = [*RUN, "--iters", str(ITERS), "--checkpoint", str(folder), "--checkpoint-every", "1"]
    path = folder / "checkpoint.npz"
    targets = np.sort(rng.integers(1, ITERS - 100, size=kills))
    for target in targets:
        resume = ["--resume"] if path.exists() else []
        assert _kill_at([*args, *resume], path, int(target), float(rng.uniform(0, 0.03)))
    proc = _xpnn([*args, "--resume"])
    assert proc.returncode == 0, proc.stderr
    summary, ref = reference
    final = load(path)
    assert final.step == ITERS
    assert _bits(final.model.params) == _bits(ref.model.params)
    assert _bits(final.optimizer_state) == _bits(ref.optimizer_state)
    assert final.history == ref.history
    assert json.loads(proc.stdout)["losses"] == summary["losses"]
    leftovers = sorted(p.name for p in folder.iterdir())
    assert leftovers == ["checkpoint.npz"], leftovers


@pytest.mark.slow  # tests/test_resume.py kills a run inside its saves in the default sessions
@pytest.mark.parametrize(("trial", "kills"), [(0, 2), (1, 2), *((t, 4) for t in range(2, 8))])
def test_sigkill_at_random_moments_then_resume(tmp_path, reference, trial, kills):
    _crash_and_resume(tmp_path, reference, np.random.default_rng(trial), kills=kills)
