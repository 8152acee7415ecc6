"""Checkpoints: a model, its optimiser's memory and the training run's place, in one file.

A checkpoint is an ``.npz`` archive written by NumPy and read back with
``allow_pickle=False``. It holds

* ``param.<name>``: each parameter, a host array in the model's dtype;
* ``optim.<name>``: each array of the optimiser's ``state_dict`` (Momentum's velocity);
* ``meta``: a 0-d unicode array, the JSON text of the model's configuration (with its
  ``init``, ``seed`` and ``dtype``), the step, the optimiser's name and hyperparameters,
  the loss history, the caller's ``extra`` data (the run's settings) and the shape and
  dtype of every array;
* ``sha256``: a 0-d unicode array, the SHA-256 of ``meta`` and of every array's bytes.

Nothing is pickled. A file that is missing, truncated, corrupt, holds an object array,
lacks an array or has one of the wrong shape or dtype is refused with a
``CheckpointError`` naming the file and the problem. Writes are atomic: the archive goes
to a temporary file in the same folder, is flushed and fsync'd, and replaces the target
with ``os.replace``, so a crash while saving leaves the previous checkpoint whole.

Float64 parameters round-trip bit for bit, and a checkpoint saved from one backend loads
on any other. ``xpnn.training.resume.Checkpointer`` keeps a training run's checkpoint current.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.backend import Array, to_numpy
from xpnn.errors import (
    BackendUnavailable,
    CheckpointError,
    XpnnError,
    XpnnValueError,
)
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN
from xpnn.optim import OPTIMIZERS

FORMAT = "xpnn.checkpoint"
VERSION = 1
PARAM, OPTIM = "param.", "optim."
FLOAT_DTYPES = ("float32", "float64")


@dataclass
class Checkpoint:
    """What ``load`` returns.

    Attributes
    ----------
    model : MLP or RNN
        The model, on the backend, device and dtype asked of ``load``.
    optimizer_state : dict
        The optimiser's ``state_dict`` as arrays of the model's backend (empty for SGD).
    step : int
        The number of training iterations done.
    history : list of (int, float)
        The ``(iteration, loss)`` readings so far.
    config : dict
        The model's configuration: ``model.config`` plus ``init``, ``weight_init_std``,
        ``seed`` and the stored ``dtype``.
    optimizer : dict or None
        ``{"name": ..., **hyperparameters}`` of the optimiser, if one was saved.
    extra : dict or None
        What the caller passed to ``save`` (the training run's settings).
    path : Path
        The file read.
    """

    model: Any
    optimizer_state: dict[str, Array]
    step: int
    history: list[tuple[int, float]]
    config: dict[str, Any]
    optimizer: dict[str, Any] | None
    extra: Any
    path: Path

    def make_optimizer(self) -> Any:
        """A new optimiser with the saved name, hyperparameters and state."""
        if self.optimizer is None:
            msg = f"{self.path}: the checkpoint holds no optimiser"
            raise CheckpointError(msg)
        hyper = {k: v for k, v in self.optimizer.items() if k != "name"}
        optimizer = OPTIMIZERS[self.optimizer["name"]](**hyper)
        optimizer.load_state_dict(self.optimizer_state)
        return optimizer


# -- saving -------------------------------------------------------------------------------


def optimizer_spec(optimizer: Any) -> dict[str, Any]:
    """``{"name": ..., **hyperparameters}``: the optimiser's registry name and the
    arguments of its constructor, read from its attributes."""
    names = [name for name, cls in OPTIMIZERS.items() if type(optimizer) is cls]
    if not names:
        msg = (
            f"cannot save an optimizer of type {type(optimizer).__name__}; expected one of "
            f"{', '.join(cls.__name__ for cls in OPTIMIZERS.values())}"
        )
        raise XpnnValueError(msg)
    spec: dict[str, Any] = {"name": names[0]}
    for arg in inspect.signature(type(optimizer)).parameters:
        if hasattr(optimizer, arg):
            spec[arg] = getattr(optimizer, arg)
    return spec


def _model_config(model: Any, dtype: str) -> dict[str, Any]:
    config = dict(model.config)
    for key in ("init", "weight_init_std", "seed"):
        value = getattr(model, key, None)
        config[key] = value if isinstance(value, (int, float, str)) or value is None else str(value)
    config["dtype"] = dtype
    return config


def _check_history(history: Any, where: str) -> list[tuple[int, float]]:
    out = []
    for entry in history or []:
        ok = isinstance(entry, (list, tuple)) and len(entry) == 2
        if ok:
            i, loss = entry
            ok = isinstance(i, (int, np.integer)) and not isinstance(i, bool)
            ok = ok and isinstance(loss, (int, float, np.floating)) and math.isfinite(loss)
        if not ok:
            msg = f"{where}: history must be (iteration, finite loss) pairs, got {entry!r}"
            raise XpnnValueError(msg)
        out.append((int(i), float(loss)))
    return out


def _digest(meta_text: str, arrays: Mapping[str, np.ndarray]) -> str:
    sha = hashlib.sha256(meta_text.encode("utf-8"))
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        sha.update(f"\n{key}:{a.dtype.str}:{a.shape}\n".encode())
        sha.update(a.tobytes())
    return sha.hexdigest()


def save(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    step: int = 0,
    history: Sequence[tuple[int, float]] | None = None,
    extra: Any = None,
) -> Path:
    """Write ``model`` (and ``optimizer``'s state, the ``step`` reached, the loss
    ``history`` and ``extra``, any JSON data) to ``path`` atomically; return the path.

    Raises
    ------
    XpnnValueError
        A parameter is not finite (a checkpoint never holds NaN), ``step`` is not a
        non-negative integer, ``extra`` is not JSON data, or the optimiser is unknown.
    CheckpointError
        The file cannot be written (the message says why); a previous file is left as it was.
    """
    path = Path(path)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        msg = f"step must be a non-negative integer, got {step!r}"
        raise XpnnValueError(msg)
    params = {key: np.ascontiguousarray(to_numpy(p)) for key, p in model.params.items()}
    bad = sorted(key for key, p in params.items() if not np.all(np.isfinite(p)))
    if bad:
        msg = f"refusing to save a checkpoint with non-finite parameters {bad} to {path}"
        raise XpnnValueError(msg)
    dtypes = {p.dtype.name for p in params.values()}
    if len(dtypes) != 1 or not dtypes <= set(FLOAT_DTYPES):
        msg = f"parameters must share one dtype of {FLOAT_DTYPES}, got {sorted(dtypes)}"
        raise XpnnValueError(msg)
    arrays = {PARAM + key: p for key, p in params.items()}
    spec = None
    if optimizer is not None:
        spec = optimizer_spec(optimizer)
        for key, value in optimizer.state_dict().items():
            arrays[OPTIM + key] = np.ascontiguousarray(to_numpy(value))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": _model_config(model, dtypes.pop()),
        "step": int(step),
        "optimizer": spec,
        "history": [list(h) for h in _check_history(history, str(path))],
        "extra": extra,
        "arrays": {
            key: {"shape": list(a.shape), "dtype": a.dtype.str} for key, a in arrays.items()
        },
    }
    try:
        meta_text = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        msg = f"extra must be JSON data (dicts, lists, str, finite numbers, None): {exc}"
        raise XpnnValueError(msg) from None
    contents = {
        **arrays,
        "meta": np.array(meta_text),
        "sha256": np.array(_digest(meta_text, arrays)),
    }
    _write_atomic(path, contents)
    return path


def _write_npz(file: Any, contents: Mapping[str, np.ndarray]) -> None:
    np.savez(file, **contents)


def _write_atomic(path: Path, contents: Mapping[str, np.ndarray]) -> None:
    """Write ``contents`` as an ``.npz`` at exactly ``path``: a temporary file in the
    same folder, flushed and fsync'd, then ``os.replace``; the folder is fsync'd after."""
    folder = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        msg = f"cannot write the checkpoint {path}: {exc.strerror or exc}"
        raise CheckpointError(msg) from None
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, contents)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            msg = f"cannot write the checkpoint {path}: {exc.strerror or exc}"
            raise CheckpointError(msg) from None
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
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


# -- loading ------------------------------------------------------------------------------


def _fail(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: {problem}")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, after its CRCs are checked; no pickles."""
    if not path.exists():
        raise _fail(path, "no such checkpoint file")
    if not path.is_file():
        raise _fail(path, "not a file (a checkpoint is one .npz file)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, f"not a readable .npz archive, truncated or corrupt ({exc})") from None
    except OSError as exc:  # a damaged offset (EINVAL on seek), or no permission to read
        raise _fail(
            path, f"cannot be read ({exc.strerror or exc}); truncated or corrupt?"
        ) from None
    except Exception as exc:  # zlib.error, NotImplementedError, ... from a damaged archive
        raise _fail(path, f"corrupt archive ({type(exc).__name__}: {exc})") from None
    if bad is not None:
        raise _fail(path, f"the member {bad!r} is corrupt (CRC mismatch or bad header)")
    odd = [n for n in names if not n.endswith(".npy")]
    if odd:
        raise _fail(path, f"not an xpnn checkpoint: members {odd} are not .npy arrays")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _fail(
                path,
                "holds an object array (pickled Python objects); xpnn never loads pickles",
            ) from None
        raise _fail(path, f"corrupt array data ({exc})") from None
    except Exception as exc:  # a damaged .npy header: ValueError, EOFError, SyntaxError, ...
        raise _fail(path, f"corrupt array data ({type(exc).__name__}: {exc})") from None
    for key, a in arrays.items():
        if a.dtype.hasobject:
            raise _fail(path, f"the array {key!r} has dtype object; refused")
    return arrays


def _text(path: Path, arrays: Mapping[str, np.ndarray], key: str) -> str:
    if key not in arrays:
        raise _fail(path, f"missing the array {key!r}; not an xpnn checkpoint or damaged")
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        raise _fail(path, f"{key!r} must be a 0-d unicode array, got {a.dtype} {a.shape}")
    return str(a[()])


def _read_meta(path: Path, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    text = _text(path, arrays, "meta")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _fail(path, f"its metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"not an xpnn checkpoint (meta format is not {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise _fail(path, f"checkpoint version {meta.get('version')!r}; this xpnn reads {VERSION}")
    for key, kind in (("model", dict), ("arrays", dict), ("history", list)):
        if not isinstance(meta.get(key), kind):
            raise _fail(path, f"its metadata lacks {key!r} (a {kind.__name__})")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise _fail(path, f"its step must be a non-negative integer, got {step!r}")
    if meta.get("optimizer") is not None and not isinstance(meta["optimizer"], dict):
        raise _fail(path, "its optimizer entry must be a dict or null")
    return meta


def expected_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The parameter shapes a model configuration (``model.config``) implies."""
    if config.get("model") == "MLP":
        sizes = [int(s) for s in config["sizes"]]
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(1, len(sizes)):
            shapes[f"W{layer}"] = (sizes[layer - 1], sizes[layer])
            shapes[f"b{layer}"] = (sizes[layer],)
        return shapes
    if config.get("model") == "RNN":
        i, h, o = (int(config[k]) for k in ("input_size", "hidden_size", "output_size"))
        shapes = {"W_in": (i, h), "W": (h, h), "W_out": (h, o)}
        if config["bias"]:
            shapes.update({"b": (h,), "b_out": (o,)})
        return shapes
    msg = f"unknown model {config.get('model')!r}; expected MLP or RNN"
    raise XpnnValueError(msg)


def _check_arrays(path: Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Every array the metadata lists is there with its shape and dtype, the parameters
    fit the model's configuration and the optimiser state fits the parameters."""
    listed = meta["arrays"]
    unlisted = sorted(set(arrays) - set(listed) - {"meta", "sha256"})
    if unlisted:
        raise _fail(path, f"holds arrays the metadata does not list: {unlisted}")
    for key, info in listed.items():
        if key not in arrays:
            raise _fail(path, f"missing the array {key!r}")
        a = arrays[key]
        if not isinstance(info, dict) or list(a.shape) != info.get("shape"):
            raise _fail(path, f"{key!r} has shape {a.shape}; the metadata says {info}")
        if a.dtype.str != info.get("dtype"):
            raise _fail(path, f"{key!r} has dtype {a.dtype}; the metadata says {info}")
    config = meta["model"]
    dtype = config.get("dtype")
    if dtype not in FLOAT_DTYPES:
        raise _fail(path, f"its dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    try:
        shapes = expected_shapes(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"its model configuration is incomplete or wrong ({exc})") from None
    params = {k[len(PARAM) :] for k in listed if k.startswith(PARAM)}
    if params != set(shapes):
        raise _fail(
            path, f"holds parameters {sorted(params)}; a {config['model']} needs {sorted(shapes)}"
        )
    for key, shape in shapes.items():
        a = arrays[PARAM + key]
        if a.shape != shape:
            raise _fail(path, f"parameter {key} has shape {a.shape}; the model needs {shape}")
        if a.dtype.name != dtype:
            raise _fail(path, f"parameter {key} has dtype {a.dtype}; the checkpoint says {dtype}")
        if not np.all(np.isfinite(a)):
            raise _fail(path, f"parameter {key} holds NaN or infinity")
    for key in (k for k in listed if k.startswith(OPTIM)):
        a, name = arrays[key], key[len(OPTIM) :]
        if name in shapes and (a.shape != shapes[name] or a.dtype.name != dtype):
            raise _fail(
                path,
                f"optimizer state {name} is {a.dtype} {a.shape}; the parameter is "
                f"{dtype} {shapes[name]}",
            )
    strays = sorted(k for k in listed if not k.startswith((PARAM, OPTIM)))
    if strays:
        raise _fail(path, f"holds arrays that are neither parameters nor state: {strays}")


def _build_model(config: Mapping[str, Any], params: dict[str, np.ndarray], **where: Any) -> Any:
    common = {"hidden": config["hidden"], "output": config["output"], "loss": config["loss"]}
    if config["model"] == "MLP":
        model = MLP.from_params(params, **common, **where)
    else:
        model = RNN.from_params(params, **common, many_to_one=config["many_to_one"], **where)
    for key in ("init", "weight_init_std", "seed"):
        setattr(model, key, config.get(key))
    return model


def load(
    path: str | os.PathLike[str],
    backend: str = "numpy",
    device: Any = None,
    dtype: str | None = None,
) -> Checkpoint:
    """Read a checkpoint written by ``save`` onto ``backend`` and ``device``, in ``dtype``
    (the saved dtype if None).

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt, holds an object (pickle) array, lacks
        an array, or has one of the wrong shape or dtype; the message names the file.
    BackendUnavailable
        ``backend`` cannot run here.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    meta = _read_meta(path, arrays)
    _check_arrays(path, meta, arrays)
    digest = _text(path, arrays, "sha256")
    payload = {k: a for k, a in arrays.items() if k not in ("meta", "sha256")}
    if digest != _digest(_text(path, arrays, "meta"), payload):
        raise _fail(path, "checksum mismatch: the data were altered after saving")
    try:
        history = _check_history(meta["history"], str(path))
    except XpnnValueError as exc:
        raise CheckpointError(str(exc)) from None
    config = meta["model"]
    params = {k[len(PARAM) :]: a for k, a in payload.items() if k.startswith(PARAM)}
    where = {"backend": backend, "device": device, "dtype": dtype or config["dtype"]}
    try:
        model = _build_model(config, params, **where)
    except (CheckpointError, BackendUnavailable):
        raise
    except XpnnError as exc:
        raise _fail(path, f"its model cannot be rebuilt ({exc})") from None
    except KeyError as exc:
        raise _fail(path, f"its model configuration lacks {exc}") from None
    state = {
        k[len(OPTIM) :]: model.asarray(a, name=k) for k, a in payload.items() if k.startswith(OPTIM)
    }
    optimizer = meta["optimizer"]
    if optimizer is not None and optimizer.get("name") not in OPTIMIZERS:
        raise _fail(path, f"unknown optimizer {optimizer.get('name')!r}")
    return Checkpoint(
        model, state, meta["step"], history, dict(config), optimizer, meta.get("extra"), path
    )
