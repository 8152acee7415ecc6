"""Checkpoint files: round trips on every backend, bit-exact loads across backends, the
refusal of truncated, corrupt, incomplete and pickle-bearing files, and atomic saves (a
save killed with SIGKILL: tests/test_resume.py)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from xpnn.checkpoint import load, save

import xpnn
from xpnn import checkpoint
from xpnn.backends import BACKENDS, backend_info, npz
from xpnn.errors import CheckpointError, XpnnValueError
from xpnn.optim import SGD, Adam, Momentum

USABLE = [name for name in BACKENDS if backend_info(name).usable]


def _bits(a) -> tuple[str, tuple[int, ...], bytes]:
    """An array's dtype, shape and bytes on the host: equal means bit for bit equal."""
    host = np.ascontiguousarray(xpnn.to_numpy(a))
    return host.dtype.str, host.shape, host.tobytes()


def _same_arrays(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(_bits(a[k]) == _bits(b[k]) for k in a)


def _stepped(model, optimizer, state=None, steps: int = 3):
    """``model``, ``optimizer`` and its state after a few updates on fixed data, so that
    parameters and state hold ordinary (not round) numbers."""
    rng = np.random.default_rng(7)
    if isinstance(model, xpnn.MLP):
        x = rng.normal(size=(4, model.sizes[0]))
        d = np.eye(model.sizes[-1])[rng.integers(0, model.sizes[-1], size=4)]
    else:
        x = rng.normal(size=(5, 3, model.input_size))
        lead = (3,) if model.many_to_one else (5, 3)
        d = rng.uniform(size=(*lead, model.output_size))
    x, d = model.asarray(x), model.asarray(d)
    state = optimizer.init(model.params) if state is None else state
    for _ in range(steps):
        _loss, grads = model.loss_and_grad(x, d)
        model.params, state = optimizer.update(model.params, grads, state)
    return model, optimizer, state


def _model(kind: str, backend, device, dtype="float64"):
    """A trained model, its optimiser and state: ``mlp`` (Momentum), ``rnn-bias``
    (many-to-one with biases, Adam) or ``rnn`` (the course's, SGD)."""
    where = {"backend": backend, "device": device, "dtype": dtype}
    if kind == "mlp":
        model = xpnn.MLP([3, 5, 4, 2], hidden="tanh", init="xavier", seed=1, **where)
        return _stepped(model, Momentum(0.1, 0.9))
    if kind == "rnn-bias":
        model = xpnn.RNN(
            2, 4, 3, hidden="tanh", output="identity", bias=True, many_to_one=True, seed=2, **where
        )
        return _stepped(model, Adam(0.05, beta1=0.5))
    return _stepped(xpnn.RNN(2, 6, 1, seed=3, **where), SGD(0.1))


HISTORY = [(0, 1.2345678901234567), (100, 0.1 + 0.2), (200, 5e-324)]


@pytest.fixture
def saved(tmp_path, backend, device) -> Path:
    """A checkpoint of a trained MLP with Momentum's velocity, from the backend under test."""
    model, optimizer, state = _model("mlp", backend, device)
    return save(
        tmp_path / "ckpt.npz",
        model,
        optimizer,
        step=300,
        history=HISTORY,
        extra={"settings": {"lr": 0.1}, "iters": 1000},
        state=state,
    )


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [pytest.param("mlp", marks=pytest.mark.jax_covering), "rnn-bias", "rnn"]
)
def test_round_trip_on_the_same_backend(tmp_path, backend, device, kind):
    model, optimizer, state = _model(kind, backend, device)
    extra = {"settings": {"lr": 0.1, "truncate": None}, "note": "ünïcode"}
    path = save(tmp_path / "ckpt.npz", model, optimizer, 300, HISTORY, extra=extra, state=state)
    got = load(path, backend=backend, device=device)
    assert type(got.model) is type(model)
    assert got.model.config == model.config
    assert _same_arrays(got.model.params, model.params)
    assert _same_arrays(got.optimizer_state, state)
    assert got.step == 300
    assert got.history == HISTORY
    assert got.extra == extra
    drawn = {key: getattr(model, key, None) for key in checkpoint.RUN_KEYS}  # init, seed, ...
    assert got.config == {**model.config, **drawn, "dtype": "float64"}
    assert {key: getattr(got.model, key, None) for key in checkpoint.RUN_KEYS} == drawn
    assert got.optimizer == checkpoint.optimizer_spec(optimizer)
    assert got.path == path
    # the restored model and optimiser take the next step exactly as the originals do
    _, _, state = _stepped(model, optimizer, state, steps=1)
    _, _, resumed = _stepped(got.model, got.make_optimizer(), got.optimizer_state, steps=1)
    assert _same_arrays(got.model.params, model.params)
    assert _same_arrays(resumed, state)


def test_round_trip_float32_and_dtype_on_load(tmp_path, backend, device):
    model, optimizer, state = _model("rnn-bias", backend, device, dtype="float32")
    path = save(tmp_path / "ckpt.npz", model, optimizer, state=state)
    got = load(path, backend=backend, device=device)
    assert got.config["dtype"] == "float32"
    assert _same_arrays(got.model.params, model.params)
    wide = load(path, backend=backend, device=device, dtype="float64")
    assert wide.config["dtype"] == "float32"
    for key, p in model.params.items():
        host = xpnn.to_numpy(wide.model.params[key])
        assert host.dtype == np.float64
        np.testing.assert_array_equal(host, xpnn.to_numpy(p).astype(np.float64))
    assert all(xpnn.to_numpy(v).dtype == np.float64 for v in wide.optimizer_state.values())


def test_model_without_optimizer_and_fresh_momentum(tmp_path, backend, device):
    model = xpnn.RNN(2, 3, 1, seed=4, backend=backend, device=device)
    got = load(save(tmp_path / "a.npz", model), backend=backend, device=device)
    assert got.optimizer is None and got.optimizer_state == {} and got.history == []
    with pytest.raises(CheckpointError, match="no optimiser"):
        got.make_optimizer()
    got = load(save(tmp_path / "b.npz", model, Momentum(0.1)), backend=backend, device=device)
    fresh = Momentum(0.1).init(model.params)  # no state given: the state before any step
    assert _same_arrays(got.optimizer_state, fresh)
    assert got.make_optimizer().hyperparameters == {"lr": 0.1, "momentum": 0.9}


@pytest.mark.parametrize(
    "kind", ["mlp", pytest.param("rnn-bias", marks=pytest.mark.jax_covering), "rnn"]
)
def test_float64_loads_bit_exactly_on_every_backend(tmp_path, backend, device, kind):
    """Saved from the backend under test, loaded on every usable backend: the same bits."""
    model, optimizer, state = _model(kind, backend, device)
    path = save(tmp_path / "ckpt.npz", model, optimizer, step=300, history=HISTORY, state=state)
    assert len(USABLE) >= 2, "a cross-backend check needs two backends"
    for target in USABLE:
        got = load(path, backend=target, device=device if target == backend else None)
        assert got.model.backend == target
        assert xpnn.to_numpy(got.model.params[next(iter(got.model.params))]).dtype == np.float64
        assert _same_arrays(got.model.params, model.params), target
        assert _same_arrays(got.optimizer_state, state), target
        assert got.history == HISTORY and got.step == 300
        # and back again: saved from the target, the file loads to the same bits
        again = load(
            save(
                tmp_path / f"{target}.npz",
                got.model,
                got.make_optimizer(),
                state=got.optimizer_state,
            ),
            backend=backend,
            device=device,
        )
        assert _same_arrays(again.model.params, model.params), target
        assert _same_arrays(again.optimizer_state, state), target


def test_save_refuses_bad_arguments(tmp_path, backend, device):
    model, _, _ = _model("rnn", backend, device)
    for step in (-1, 1.5, True, "3"):
        with pytest.raises(XpnnValueError, match="step"):
            save(tmp_path / "a.npz", model, step=step)
    with pytest.raises(XpnnValueError, match="JSON"):
        save(tmp_path / "a.npz", model, extra={"a": {1, 2}})
    with pytest.raises(XpnnValueError, match="JSON"):
        save(tmp_path / "a.npz", model, extra={"a": float("nan")})
    with pytest.raises(XpnnValueError, match="history"):
        save(tmp_path / "a.npz", model, history=[(0, float("inf"))])
    with pytest.raises(XpnnValueError, match="optimizer"):
        save(tmp_path / "a.npz", model, optimizer=object())
    with pytest.raises(CheckpointError, match="cannot write"):
        save(tmp_path / "missing" / "a.npz", model)
    with pytest.raises(XpnnValueError, match="params must be a dict with the model's keys"):
        save(tmp_path / "a.npz", model, params={"W_in": model.params["W_in"]})
    wrong = {**model.params, "W": model.params["W_in"]}
    with pytest.raises(XpnnValueError, match=r"params\['W'\] has shape"):
        save(tmp_path / "a.npz", model, params=wrong)
    assert sorted(os.listdir(tmp_path)) == []


def test_save_refuses_non_finite_parameters(tmp_path, backend, device):
    model, _, _ = _model("mlp", backend, device)
    path = save(tmp_path / "ckpt.npz", model)
    before = path.read_bytes()
    bad = dict(model.params)
    bad["W1"] = bad["W1"] * float("nan")
    with pytest.raises(XpnnValueError, match="non-finite"):  # a diverging run's TrainState
        save(path, model, params=bad)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# -- refused files ------------------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _forge(path: Path, change) -> None:
    """Rewrite the checkpoint with ``change(meta, arrays)`` applied and a fresh checksum:
    a well-formed file whose content is wrong."""
    import json

    arrays = _arrays(path)
    meta = json.loads(str(arrays.pop("meta")[()]))
    arrays.pop("sha256")
    change(meta, arrays)
    meta["arrays"] = {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()}
    text = json.dumps(meta)
    np.savez(path, **arrays, meta=np.array(text), sha256=np.array(checkpoint._digest(text, arrays)))


def _object_array(path: Path) -> None:
    arrays = _arrays(path)
    arrays["param.W1"] = np.array([{"evil": "pickle"}, None], dtype=object)
    np.savez(path, **arrays)  # np.savez pickles object arrays


def _object_meta(path: Path) -> None:
    arrays = _arrays(path)
    arrays["meta"] = np.array([str(arrays["meta"][()])], dtype=object)
    np.savez(path, **arrays)


def _replace(key: str, value) -> callable:
    def change(path: Path) -> None:
        arrays = _arrays(path)
        arrays[key] = value(arrays[key]) if callable(value) else value
        np.savez(path, **arrays)

    return change


def _drop(member: str):
    def change(path: Path) -> None:
        members = _members(path)
        del members[member]
        _write_members(path, members)

    return change


def _add_member(path: Path) -> None:
    members = _members(path)
    members["extra.npy"] = members["param.b1.npy"]
    _write_members(path, members)


def _cut(fraction: float):
    def change(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return change


def _flip(fraction: float):
    def change(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[int(len(data) * fraction)] ^= 0xFF
        path.write_bytes(bytes(data))

    return change


def _plain_npy(path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    path.write_bytes(buf.getvalue())


def _pickle_file(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"W1": [1.0, 2.0]}))


def _nan_param(meta, arrays) -> None:
    arrays["param.W1"] = arrays["param.W1"] * np.nan


def _wrong_shape_everywhere(meta, arrays) -> None:
    arrays["param.W1"] = np.zeros((2, 2))


def _wrong_dtype_everywhere(meta, arrays) -> None:
    for key in list(arrays):
        arrays[key] = arrays[key].astype(np.int64)
    meta["model"]["dtype"] = "int64"


def _velocity_misfit(meta, arrays) -> None:
    arrays["optim.v.W1"] = np.zeros((1, 1))


def _state_foreign(meta, arrays) -> None:
    arrays["optim.m.W1"] = arrays.pop("optim.v.W1")


def _bad_hyperparameter(meta, arrays) -> None:
    meta["optimizer"]["momentum"] = 1.5


def _unknown_optimizer(meta, arrays) -> None:
    meta["optimizer"]["name"] = "adamw"


def _unknown_activation(meta, arrays) -> None:
    meta["model"]["hidden"] = "swish"


def _missing_config(meta, arrays) -> None:
    del meta["model"]["sizes"]


def _bad_history(meta, arrays) -> None:
    meta["history"] = [[0, "NaN"]]


def _bad_step(meta, arrays) -> None:
    meta["step"] = -3


def _other_format(meta, arrays) -> None:
    meta["format"] = "something.else"


def _future_version(meta, arrays) -> None:
    meta["version"] = 99


def _nested_extra(meta, arrays) -> None:
    deep: list = []
    for _ in range(200):  # parses, but past MAX_DEPTH
        deep = [deep]
    meta["extra"] = deep


def _list_activation(meta, arrays) -> None:
    meta["model"]["hidden"] = ["tanh"]


def _string_bias(meta, arrays) -> None:
    meta["model"]["sizes"] = "3,5,4,2"


def _extra_hyperparameter(meta, arrays) -> None:
    meta["optimizer"]["nesterov"] = 1


def _string_hyperparameter(meta, arrays) -> None:
    meta["optimizer"]["lr"] = "0.1"


def _nan_velocity(meta, arrays) -> None:
    arrays["optim.v.W1"] = arrays["optim.v.W1"] * np.nan


def _one_velocity_missing(meta, arrays) -> None:
    del arrays["optim.v.b2"]


def _extra_meta_key(meta, arrays) -> None:
    meta["run_me"] = "os.system('rm -rf /')"


def _nested_json(path: Path) -> None:
    """Metadata nested too deeply for Python's JSON parser, under a valid checksum."""
    arrays = _arrays(path)
    arrays.pop("sha256")
    text = "[" * 100_000 + "]" * 100_000
    arrays["meta"] = np.array(text)
    payload = {k: a for k, a in arrays.items() if k != "meta"}
    np.savez(path, **arrays, sha256=np.array(checkpoint._digest(text, payload)))


def _compressed(path: Path) -> None:
    members = _members(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _renamed(name: str):
    def change(path: Path) -> None:
        members = _members(path)
        members[name] = members.pop("param.b1.npy")
        _write_members(path, members)

    return change


def _longer_than_header(path: Path) -> None:
    members = _members(path)
    members["param.b1.npy"] += b"\0" * 64
    _write_members(path, members)


BAD_FILES = {
    # truncated
    "cut in half": (_cut(0.5), "not a readable .npz archive"),
    "cut to nothing": (_cut(0.0), "not a readable .npz archive"),
    "last byte cut": (_cut(0.9999), "not a readable .npz archive"),
    "only the first tenth": (_cut(0.1), "not a readable .npz archive"),
    # corrupted bytes (the sweep below covers every region)
    "byte flipped at 30%": (_flip(0.3), "corrupt"),
    "byte flipped at 60%": (_flip(0.6), "corrupt"),
    "byte flipped in the directory": (_flip(0.97), ""),
    # not an npz at all
    "plain .npy": (_plain_npy, "not a readable .npz archive"),
    "a pickle": (_pickle_file, "not a readable .npz archive"),
    "text": (lambda p: p.write_text("hello"), "not a readable .npz archive"),
    # pickles inside the archive
    "object array parameter": (_object_array, "object array"),
    "object array metadata": (_object_meta, "object array"),
    # missing or extra arrays
    "no meta": (_drop("meta.npy"), "missing the array 'meta'"),
    "no checksum": (_drop("sha256.npy"), "missing the array 'sha256'"),
    "no W1": (_drop("param.W1.npy"), "missing the array 'param.W1'"),
    "no velocity": (_drop("optim.v.b2.npy"), "missing the array 'optim.v.b2'"),
    "extra array": (_add_member, "does not list"),
    "non-npy member": (lambda p: _write_members(p, {**_members(p), "x.txt": b"1"}), "not .npy"),
    # wrong shapes and dtypes
    "wrong shape": (_replace("param.W1", np.zeros((2, 2))), "shape"),
    "wrong dtype float32": (_replace("param.W1", lambda a: a.astype(np.float32)), "dtype"),
    "wrong dtype int": (_replace("param.b1", lambda a: a.astype(np.int64)), "dtype"),
    "meta not 0-d text": (_replace("meta", np.zeros(3)), "0-d unicode"),
    "meta not JSON": (_replace("meta", np.array("{not json")), "not valid JSON"),
    "altered value": (_replace("param.W2", lambda a: a + 1e-16), "checksum mismatch"),
    "altered history": (
        _replace("meta", lambda m: np.array(str(m[()]).replace("0.1", "0.2"))),
        "checksum mismatch",
    ),
    # well-formed files with wrong content
    "NaN parameter": (lambda p: _forge(p, _nan_param), "NaN"),
    "shape against config": (lambda p: _forge(p, _wrong_shape_everywhere), "the model needs"),
    "int dtype": (lambda p: _forge(p, _wrong_dtype_everywhere), "has dtype int64"),
    "velocity shape": (lambda p: _forge(p, _velocity_misfit), "optimizer state v.W1"),
    "unknown optimizer": (lambda p: _forge(p, _unknown_optimizer), "unknown optimizer"),
    "state foreign": (lambda p: _forge(p, _state_foreign), "holds the optimizer state ['m.W1'"),
    "bad momentum": (lambda p: _forge(p, _bad_hyperparameter), "momentum must be in"),
    "unknown activation": (lambda p: _forge(p, _unknown_activation), "cannot be rebuilt"),
    "config incomplete": (lambda p: _forge(p, _missing_config), "incomplete"),
    "history not numbers": (lambda p: _forge(p, _bad_history), "history"),
    "negative step": (lambda p: _forge(p, _bad_step), "step"),
    "other format": (lambda p: _forge(p, _other_format), "not an xpnn checkpoint"),
    "future version": (lambda p: _forge(p, _future_version), "version 99"),
    # hostile metadata: the schema's types, bounded nesting
    "nested extra": (lambda p: _forge(p, _nested_extra), "nests"),
    "nested JSON": (_nested_json, "nests too deeply"),
    "list activation": (lambda p: _forge(p, _list_activation), "not a string"),
    "string sizes": (lambda p: _forge(p, _string_bias), "sizes must be a list"),
    "extra hyperparameter": (lambda p: _forge(p, _extra_hyperparameter), "nesterov"),
    "string hyperparameter": (lambda p: _forge(p, _string_hyperparameter), "takes numbers"),
    "extra meta entry": (lambda p: _forge(p, _extra_meta_key), "run_me"),
    # optimiser state: complete and finite
    "NaN velocity": (lambda p: _forge(p, _nan_velocity), "optimizer state ['v.W1'] holds NaN"),
    "one velocity missing": (lambda p: _forge(p, _one_velocity_missing), "optimizer state"),
    # archive tricks
    "compressed members": (_compressed, "compressed"),
    "path traversal name": (_renamed("../../evil.npy"), "is not .npy"),
    "absolute name": (_renamed("/tmp/evil.npy"), "is not .npy"),
    "member longer than its header": (_longer_than_header, "not as long as its header"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_refused_with_the_path_and_problem(saved, backend, device, case):
    spoil, problem = BAD_FILES[case]
    spoil(saved)
    with pytest.raises(CheckpointError) as info:
        load(saved, backend=backend, device=device)
    message = str(info.value)
    assert message.startswith(f"{saved}: "), message
    assert problem in message, message
    assert "\n" not in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load(tmp_path / "nothing.npz")
    with pytest.raises(CheckpointError, match="not a file"):
        load(tmp_path)


def _sweep(saved: Path, backend, device, positions) -> tuple[int, int]:
    """Flip each byte at ``positions``: the load must refuse the file or return exactly
    what was saved (a flip in a field zip ignores, such as a timestamp)."""
    original = saved.read_bytes()
    want = load(saved, backend=backend, device=device)
    refused = harmless = 0
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 0xFF
        saved.write_bytes(bytes(data))
        try:
            got = load(saved, backend=backend, device=device)
        except CheckpointError as exc:
            assert str(exc).startswith(str(saved)), exc
            refused += 1
            continue
        assert _same_arrays(got.model.params, want.model.params), pos
        assert _same_arrays(got.optimizer_state, want.optimizer_state), pos
        assert (got.step, got.history, got.config, got.extra, got.optimizer) == (
            want.step,
            want.history,
            want.config,
            want.extra,
            want.optimizer,
        ), pos
        harmless += 1
    return refused, harmless


def test_flipped_bytes_are_refused_or_harmless(saved, backend, device):
    size = saved.stat().st_size
    refused, harmless = _sweep(saved, backend, device, range(3, size, 37))
    assert refused > 0.8 * (refused + harmless)


@pytest.mark.slow
def test_every_single_byte_flip_is_refused_or_harmless(saved):
    """All ~5900 single-byte flips of a file saved from the backend under test, loaded on
    NumPy (the bytes, not the loading backend, are under test; the fast sweep above loads
    on every backend)."""
    refused, harmless = _sweep(saved, "numpy", None, range(saved.stat().st_size))
    assert refused > 0.8 * (refused + harmless)


# -- atomic saves -------------------------------------------------------------------------


class Crash(Exception):
    """A failure injected into a save."""


def _half_then(exc):
    def write(file, contents):
        buf = io.BytesIO()
        np.savez(buf, **contents)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise exc

    return write


@pytest.mark.parametrize(
    ("where", "exc", "raised"),
    [
        ("npz.write", OSError(28, "No space left on device"), CheckpointError),
        ("npz.write", Crash("power cut"), Crash),
        ("npz.write", KeyboardInterrupt(), KeyboardInterrupt),
        ("fsync", OSError(5, "Input/output error"), CheckpointError),
        ("replace", Crash("killed before the rename"), Crash),
    ],
)
def test_a_crash_during_save_leaves_the_previous_checkpoint(
    saved, backend, device, monkeypatch, where, exc, raised
):
    before = saved.read_bytes()
    model, optimizer, state = _model("mlp", backend, device)
    _, _, state = _stepped(model, optimizer, state, steps=2)  # a newer state than the file's
    if where == "npz.write":
        monkeypatch.setattr(npz, "write", _half_then(exc))
    else:

        def fail(*args, **kwargs):
            raise exc

        monkeypatch.setattr(checkpoint.os, where, fail)
    with pytest.raises(raised):
        save(saved, model, optimizer, step=301, state=state)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name], "a temporary file was left behind"
    assert load(saved, backend=backend, device=device).step == 300
