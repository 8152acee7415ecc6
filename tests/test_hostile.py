"""Hostile and careless input, re-run as generated batteries (issue 11, item 10).

* Bad API calls, generated from classes of bad values (names that are not strings,
  numbers no float holds, sizes past NumPy's limits, arrays of the wrong kind, NaN):
  each must raise an ``XpnnError`` subclass with a bounded message and leave the model
  exactly as it was.
* Hostile checkpoint files (truncated, bit-flipped, zip bombs, nested or mistyped
  metadata, pickle payloads, path traversal names, missing or NaN optimiser state):
  each is refused with a ``CheckpointError``; nothing runs, nothing is written, and a zip
  bomb costs no memory.
* Crash and resume: a training subprocess is SIGKILLed at random moments (many inside a
  save); resumed, it ends bit for bit where an uninterrupted run does.
"""

from __future__ import annotations

import io
import json
import pickle
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import checkpoint
from xpnn.checkpoint import load, save
from xpnn.errors import CheckpointError, XpnnError
from xpnn.training.loop import train

MAX_MESSAGE = 400  # fixed text plus at most ~80 characters of each echoed value
LONG = "s" * 5000


def _bits(params: dict) -> dict:
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in params.items()}


def _refused(call, model=None, kind=XpnnError) -> XpnnError:
    """``call()`` raises ``kind`` with a bounded message and leaves ``model`` as it was."""
    before = None if model is None else _bits(model.params)
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]}..."
    assert "Traceback" not in message
    if model is not None:
        assert _bits(model.params) == before, "a failed call changed the model"
    return info.value


# -- the classes of bad values --------------------------------------------------------

NOT_NAMES = {
    "list": ["sigmoid"],
    "dict": {"sigmoid": 1},
    "tuple": ("relu",),
    "set": {"tanh"},
    "long string": LONG,
    "None": None,
    "int": 3,
    "bytes": b"relu",
    "unknown": "softplus",
    "empty": "",
}
NOT_POSITIVE = {
    "huge int": 10**400,
    "huge negative int": -(10**400),
    "nan": float("nan"),
    "inf": float("inf"),
    "negative": -1.0,
    "zero": 0,
    "string": "1.0",
    "bool": True,
    "complex": 1 + 1j,
    "None": None,
    "list": [1.0],
}
NOT_SIZES = {
    "1e30": 10**30,
    "2**31": 2**31,
    "2**63": 2**63,
    "zero": 0,
    "negative": -1,
    "float": 1.5,
    "string": "3",
    "bool": True,
    "None": None,
    "list": [3],
}
NOT_SEEDS = {"negative": -1, "float": 1.5, "string": "0", "list": [[-1]], "long": LONG}


def _mlp(backend, device, **kw):
    return xpnn.MLP([2, 3, 2], backend=backend, device=device, **kw)


def _rnn(backend, device, **kw):
    return xpnn.RNN(2, 3, 1, backend=backend, device=device, **kw)


def _cases(model: str, key: str, values: dict, **fixed) -> list:
    return [
        pytest.param(model, {**fixed, key: v}, id=f"{model}-{key}-{label}")
        for label, v in values.items()
    ]


NOT_DTYPES = {"int32": "int32", "complex": "complex128", "None": None, "list": ["float64"]}
NOT_LAYERS = {
    "long": LONG,
    "None": None,
    "int": 5,
    "one": [2],
    "nested": [[2, 3]],
    "dict": {"a": 2},
}
NOT_NAMES_BUT_NONE = {k: v for k, v in NOT_NAMES.items() if v is not None}
CONSTRUCTOR_CASES = [
    *(c for k in ("hidden", "output", "loss", "init") for c in _cases("MLP", k, NOT_NAMES)),
    *(c for k in ("output", "loss", "init", "cell") for c in _cases("RNN", k, NOT_NAMES)),
    *_cases("RNN", "hidden", NOT_NAMES_BUT_NONE),  # None: the cell's own activation
    *_cases("MLP", "weight_init_std", NOT_POSITIVE, init="std"),
    *_cases("RNN", "weight_init_std", NOT_POSITIVE),
    *(pytest.param("MLP", {"sizes": [2, v, 1]}, id=f"MLP-sizes-{k}") for k, v in NOT_SIZES.items()),
    *_cases("RNN", "hidden_size", NOT_SIZES),
    *_cases("RNN", "input_size", NOT_SIZES),
    *_cases("RNN", "seed", NOT_SEEDS),
    *_cases("MLP", "seed", NOT_SEEDS),
    *_cases("MLP", "dtype", {**NOT_DTYPES, "long": LONG}),
    *_cases("MLP", "backend", {"long": LONG, "list": ["numpy"], "unknown": "tensorflow"}),
    *_cases("MLP", "device", {"long": LONG, "unknown": "tpu:7", "int": 3}),
    *_cases("MLP", "sizes", NOT_LAYERS),
]


@pytest.mark.parametrize(("model", "kwargs"), CONSTRUCTOR_CASES)
def test_constructor_battery(backend, device, model, kwargs):
    where = {"backend": backend, "device": device}
    if model == "MLP":
        kwargs = {"sizes": [2, 3, 2], **where, **kwargs}
        _refused(lambda: xpnn.MLP(**kwargs))
    else:
        kwargs = {"input_size": 2, "hidden_size": 3, "output_size": 1, **where, **kwargs}
        _refused(lambda: xpnn.RNN(**kwargs))


def _bad_arrays(shape: tuple[int, ...]) -> dict:
    """Values that must not become a parameter or an input of ``shape``."""
    good = np.ones(shape)
    masked = np.ma.masked_array(good, mask=np.zeros(shape, dtype=bool))
    cases = {
        "complex": good + 1j,
        "complex list": (good + 0.5j).tolist(),
        "nan": np.full(shape, np.nan),
        "inf": np.full(shape, np.inf),
        "-inf in one place": np.where(good > 2, 0.0, -np.inf),
        "strings": np.full(shape, "1.0"),
        "object": np.array([object()] * good.size, dtype=object).reshape(shape),
        "masked": masked,
        "None": None,
        "huge ints": [[10**400] * shape[-1]] * (shape[0] if len(shape) > 1 else 1),
        "ragged": [[1.0, 2.0], [3.0]],
        "wrong shape": np.ones((*shape, 2)),
        "scalar": 1.0,
        "dict": {"a": 1},
    }
    if len(shape) == 2:
        with warnings.catch_warnings():  # NumPy discourages the matrix class: that is the point
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            cases["matrix"] = np.asmatrix(good)
    return cases


def _sparse_torch(shape):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    return torch.ones(shape, dtype=torch.float64).to_sparse()


PARAM_CASES = [("W1", name) for name in _bad_arrays((2, 3))] + [
    ("b1", name) for name in _bad_arrays((3,))
]


@pytest.mark.parametrize(("key", "case"), PARAM_CASES)
def test_params_setter_and_from_params_battery(backend, device, key, case):
    net = _mlp(backend, device)
    shape = net.param_shapes[key]
    bad = _bad_arrays(shape)[case]
    host = {k: xpnn.to_numpy(v) for k, v in net.params.items()}
    _refused(lambda: xpnn.MLP.from_params({**host, key: bad}, backend=backend, device=device))

    def assign():
        net.params = {**net.params, key: net.asarray(bad, name=key)}

    _refused(assign, net)


@pytest.mark.parametrize("params", [None, [], "W1", {"W1": 1}, {1: 2}, {"W1": None}], ids=repr)
def test_params_setter_battery_of_containers(backend, device, params):
    net = _mlp(backend, device)

    def assign():
        net.params = params

    _refused(assign, net)
    _refused(lambda: xpnn.MLP.from_params(params, backend=backend, device=device))


@pytest.mark.parametrize("case", list(_bad_arrays((4, 2))))
@pytest.mark.parametrize("method", ["forward", "loss", "loss_and_grad", "asarray"])
def test_input_battery(backend, device, case, method):
    net = _mlp(backend, device)
    bad = _bad_arrays((4, 2))[case]
    d = net.asarray(np.eye(2)[[0, 1, 0, 1]])
    calls = {
        "forward": lambda: net.forward(net.asarray(bad)),
        "loss": lambda: net.loss(net.asarray(bad), d),
        "loss_and_grad": lambda: net.loss_and_grad(net.asarray(bad), d),
        "asarray": lambda: net.forward(bad),
    }
    _refused(calls[method], net)


def test_sparse_torch_tensors_are_refused(backend, device):
    net = _mlp(backend, device)
    _refused(lambda: net.asarray(_sparse_torch((4, 2))), net)
    host = {k: xpnn.to_numpy(v) for k, v in net.params.items()}
    sparse = _sparse_torch((2, 3))
    _refused(lambda: xpnn.MLP.from_params({**host, "W1": sparse}, backend=backend, device=device))


TRAIN_CASES = [
    pytest.param(key, v, id=f"{key}-{label}")
    for key, values in (
        ("clip", NOT_POSITIVE),
        ("iters", NOT_SIZES),
        ("log_every", NOT_SIZES),
        ("truncate", NOT_SIZES),
    )
    for label, v in values.items()
    if not (v is None and key in ("clip", "truncate"))  # None: no clipping, full BPTT
]


@pytest.mark.parametrize(("key", "value"), TRAIN_CASES)
def test_train_battery(backend, device, key, value):
    net = _rnn(backend, device)
    stream = xpnn.datasets.BinaryAdditionStream(2, bits=4, seed=0)
    kwargs = {"iters": 5, key: value}
    _refused(lambda: train(net, xpnn.SGD(0.1), stream, **kwargs), net)


def test_the_battery_is_hundreds_of_calls():
    per_backend = (
        len(CONSTRUCTOR_CASES)
        + 2 * len(PARAM_CASES)
        + 2 * 6
        + 4 * len(_bad_arrays((4, 2)))
        + len(TRAIN_CASES)
    )
    assert per_backend >= 300, per_backend


# -- hostile checkpoint files ---------------------------------------------------------


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
    checks = refused = 0
    for path, value in list(_paths(meta)):
        for wrong in WRONG_TYPES.values():
            if wrong == value and type(wrong) is type(value):
                continue
            _forge(good, _set(meta, path, wrong))
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
            assert path[:1] == ("extra",) or numbers or nullable, (path, wrong)
            assert _bits(loaded.model.params) == _bits(original.model.params)
    assert checks >= 300 and refused >= 250, (checks, refused)


def _zip_bomb(path: Path, n: int = 25_000_000) -> None:
    """``param.W1`` replaced by ``n`` float64 zeros (200 MB) deflated to about 200 kB"""
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
    """A bomb whose metadata and configuration agree with it: a 2 x 12,500,000 layer."""
    meta = _meta(path)
    n = 12_500_000
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
        _refused(lambda: load(good), kind=CheckpointError)
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
    before = sorted(p.name for p in tmp_path.rglob("*"))
    spoil = _hostile_files(tmp_path)[case]
    with np.errstate(all="ignore"):
        try:
            spoil(good)
        except (OverflowError, ValueError) as exc:  # JSON cannot even write this
            pytest.skip(f"the hostile file cannot be written: {exc}")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _refused(lambda: load(good), kind=CheckpointError)
    assert not (tmp_path / "PWNED").exists(), "a pickle payload ran"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "load wrote a file"


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


# -- crash and resume -------------------------------------------------------------------

RUN = ["train", "binary-addition", "--seed", "5", "--momentum", "0.5", "--json", "--quiet"]
ITERS = 600


def _xpnn(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xpnn.cli", *args], capture_output=True, text=True, timeout=300
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
        [sys.executable, "-m", "xpnn.cli", *args],
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


@pytest.mark.parametrize("trial", range(2))
def test_sigkill_at_random_moments_then_resume(tmp_path, reference, trial):
    _crash_and_resume(tmp_path, reference, np.random.default_rng(trial), kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2, 8))
def test_sigkill_at_random_moments_then_resume_more(tmp_path, reference, trial):
    _crash_and_resume(tmp_path, reference, np.random.default_rng(trial), kills=4)
