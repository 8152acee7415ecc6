"""Checkpoints: a model, its optimiser's memory and the training run's place, in one file.

A checkpoint is an ``.npz`` archive written by NumPy and read back with
``allow_pickle=False``. It holds

* ``param.<name>``: each parameter, a host array in the model's dtype;
* ``optim.<key>``: each array of the optimiser's state (``optimizer.init``'s keys, such
  as Momentum's ``v.W1`` or Adam's ``m.W1``, ``v.W1`` and ``t``);
* ``meta``: a 0-d unicode array, the JSON text of the model's configuration (with its
  ``init``, ``seed`` and ``dtype``), the step, the optimiser's name and hyperparameters,
  the loss history, the caller's ``extra`` data (the run's settings) and the shape and
  dtype of every array;
* ``sha256``: a 0-d unicode array, the SHA-256 of ``meta`` and of every array's bytes.

Nothing is pickled. A file that is missing, truncated, corrupt, compressed, holds an
object array, lacks an array or has one of the wrong shape or dtype, metadata of the
wrong types, or optimiser state that is incomplete or not finite is refused with a
``CheckpointError`` naming the file and the problem, before any array is read (see
"loading" below). Writes are atomic (``xpnn.io.atomic``): the archive goes to a temporary
file in the same folder (named ``.NAME.PID@HOST.*.tmp``, so a later run knows whose it
is), is flushed and fsync'd, and replaces the target with ``os.replace``, so a crash while
saving leaves the previous checkpoint whole.

Float64 parameters round-trip bit for bit, and a checkpoint saved from one backend loads
on any other. ``xpnn.training.resume.Checkpointer`` keeps a training run's checkpoint current.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import numbers
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xpnn.backends import Array, npz, to_numpy
from xpnn.errors import (
    BackendUnavailable,
    CheckpointError,
    NonFiniteError,
    OutputError,
    XpnnError,
    XpnnTypeError,
    XpnnValueError,
    check_history,
    is_integer,
    is_real,
    shown,
)
from xpnn.io.atomic import write_atomic
from xpnn.nn import MODELS
from xpnn.nn.init import RECURRENT_INITS
from xpnn.optim import OPTIMIZERS, Optimizer

FORMAT = "xpnn.training.checkpoint"
VERSION = 1
PARAM, OPTIM = "param.", "optim."
FLOAT_DTYPES = ("float32", "float64")


class NonFiniteParameters(NonFiniteError):
    """``save`` refused a model whose parameters hold NaN or infinity."""


@dataclass
class Checkpoint:
    """What ``load`` returns.

    Attributes
    ----------
    model : MLP or RNN
        The model, on the backend, device and dtype asked of ``load``.
    optimizer_state : dict
        The optimiser's state as arrays of the model's backend (empty for SGD).
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

    def make_optimizer(self) -> Optimizer:
        """A new optimiser with the saved name and hyperparameters (its state is
        ``optimizer_state``)."""
        if self.optimizer is None:
            msg = f"{self.path}: the checkpoint holds no optimiser"
            raise CheckpointError(msg)
        hyper = {k: v for k, v in self.optimizer.items() if k != "name"}
        return OPTIMIZERS[self.optimizer["name"]](**hyper)


# -- saving -------------------------------------------------------------------------------


def optimizer_spec(optimizer: Any) -> dict[str, Any]:
    """``{"name": ..., **hyperparameters}``: the optimiser's registry name and the
    arguments of its constructor."""
    if type(optimizer) not in OPTIMIZERS.values():
        msg = (
            f"cannot save an optimizer of type {type(optimizer).__name__}; expected one of "
            f"{', '.join(cls.__name__ for cls in OPTIMIZERS.values())}"
        )
        raise XpnnValueError(msg)
    return {"name": optimizer.name, **optimizer.hyperparameters}


RUN_KEYS = ("init", "weight_init_std", "init_scale", "seed")  # how the weights were drawn


def _model_config(model: Any, dtype: str) -> dict[str, Any]:
    """``model.config`` plus how its weights were drawn and its dtype."""
    config = dict(model.config)
    for key in RUN_KEYS:
        value = getattr(model, key, None)
        config[key] = value if isinstance(value, (int, float, str)) or value is None else str(value)
    config["dtype"] = dtype
    return config


def _architecture(config: Mapping[str, Any]) -> dict[str, Any]:
    """The saved configuration less what ``_model_config`` added: ``model.config``."""
    return {k: v for k, v in config.items() if k not in (*RUN_KEYS, "dtype")}


def _check_history(history: Any, where: str, step: int) -> list[tuple[int, float]]:
    """``history`` checked (``checks.check_history``) and not ahead of ``step``; a
    refusal names ``where``."""
    try:
        out = check_history(history)
    except XpnnError as exc:
        raise XpnnValueError(f"{where}: {exc}") from None
    behind = _behind(out, step)
    if behind:
        raise XpnnValueError(f"{where}: {behind}")
    return out


def _behind(history: Sequence[Sequence[Any]], step: int) -> str | None:
    """What is wrong where ``step`` (iterations done) is behind a reading of ``history``
    (a reading at iteration ``i`` happens before update ``i``: ``i <= step``); None if
    nothing is."""
    last = max((i for i, _loss in history), default=0)
    if last <= step:
        return None
    return f"its step {step} is behind its history, which has a reading at iteration {last}"


def _digest(meta_text: str, arrays: Mapping[str, Any]) -> str:
    sha = hashlib.sha256(meta_text.encode("utf-8"))
    for key in sorted(arrays):
        a = arrays[key]  # a host array: ``tobytes`` is its values in C order
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
    *,
    state: Mapping[str, Array] | None = None,
    params: Mapping[str, Array] | None = None,
) -> Path:
    """Write ``model`` (its ``params``, or ``params`` keyed and shaped like them, such as
    a ``TrainState``'s; and ``optimizer`` with its ``state``, ``optimizer.init``'s if
    None, the ``step`` reached, the loss ``history`` and ``extra``, any JSON data) to
    ``path`` atomically; return the path.

    Raises
    ------
    XpnnTypeError
        ``model`` is not an xpnn model.
    XpnnValueError
        A parameter or state array is not finite (a checkpoint never holds NaN), the state
        does not belong to the optimiser and model, ``step`` is not a non-negative
        integer, ``extra`` is not JSON data, or the optimiser is unknown.
    CheckpointError
        The file cannot be written (the message says why); a previous file is left as it was.
    """
    path = Path(path)
    if not isinstance(model, tuple(MODELS.values())):
        msg = f"model must be an xpnn MLP or RNN, got {type(model).__name__}"
        raise XpnnTypeError(msg, argument="model")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        msg = f"step must be a non-negative integer, got {shown(step)}"
        raise XpnnValueError(msg)
    params = model.params if params is None else params
    if not isinstance(params, Mapping) or set(params) != set(model.params):
        msg = f"params must be a dict with the model's keys {sorted(model.params)}"
        raise XpnnValueError(msg)
    arrays = {PARAM + key: to_numpy(p) for key, p in params.items()}
    for key, shape in model.param_shapes.items():
        if arrays[PARAM + key].shape != shape:
            msg = f"params[{key!r}] has shape {arrays[PARAM + key].shape}, the model's {shape}"
            raise XpnnValueError(msg)
    spec = None
    if optimizer is not None:
        spec = optimizer_spec(optimizer)
        state = optimizer.init(params) if state is None else state
        optimizer.check_state(params, state)  # keys, shapes, dtypes; values below
        for key, value in state.items():
            arrays[OPTIM + key] = to_numpy(value)  # 0-d stays 0-d
    bad = sorted(key for key, a in arrays.items() if not npz.all_finite(a))
    if bad:  # the one finiteness check of a save; load's is the ``params`` setter's
        msg = f"refusing to save a checkpoint with non-finite {bad} to {path}"
        raise NonFiniteParameters(msg)
    dtypes = {a.dtype.name for a in arrays.values()}
    if len(dtypes) != 1 or not dtypes <= set(FLOAT_DTYPES):
        msg = f"parameters and state must share one dtype of {FLOAT_DTYPES}, got {sorted(dtypes)}"
        raise XpnnValueError(msg)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": _model_config(model, dtypes.pop()),
        "step": int(step),
        "optimizer": spec,
        "history": [list(h) for h in _check_history(history, str(path), int(step))],
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
        "meta": meta_text,
        "sha256": _digest(meta_text, arrays),
    }
    try:
        write_atomic(path, lambda file: npz.write(file, contents), what="the checkpoint")
    except OutputError as exc:
        raise CheckpointError(str(exc)) from None
    return path


# -- loading ------------------------------------------------------------------------------
#
# Nothing is inflated or trusted before it is checked: the archive's directory first (names,
# sizes, no compression), then every member's .npy header (dtype, shape, size), then the
# metadata (bounded size and nesting, a schema of types), then the headers against the
# metadata and the model's own parameter shapes. Only then are the arrays read, each
# exactly as large as its checked header says, and the checksum compared.

MAX_DEPTH = 32  # nesting of the caller's ``extra`` data


def _is_int(value: Any) -> bool:
    """A non-negative int that fits an int64 (a step, an iteration, a size, a seed)."""
    return is_integer(value) and 0 <= value < 2**63


def _parse_meta(path: Path, text: str) -> dict[str, Any]:
    """The metadata, checked against its schema: the types of every entry that load
    uses, before any of it is used."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        problem = "nests too deeply" if isinstance(exc, RecursionError) else f"({exc})"
        raise npz.fail(path, f"its metadata is not valid JSON {problem}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise npz.fail(path, f"not an xpnn checkpoint (meta format is not {FORMAT!r})")
    if type(meta.get("version")) is not int or meta["version"] != VERSION:
        raise npz.fail(
            path, f"checkpoint version {shown(meta.get('version'))}; this xpnn reads {VERSION}"
        )
    keys = {"format", "version", "model", "step", "optimizer", "history", "extra", "arrays"}
    if set(meta) != keys:
        odd, lacking = sorted(set(meta) - keys), sorted(keys - set(meta))
        raise npz.fail(path, f"its metadata has unknown entries {shown(odd)}, lacks {lacking}")
    if npz.depth(meta) > MAX_DEPTH:
        raise npz.fail(path, f"its metadata nests deeper than {MAX_DEPTH} levels")
    if not _is_int(meta["step"]):
        raise npz.fail(path, f"its step must be a non-negative integer, got {shown(meta['step'])}")
    config = meta["model"]
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        raise npz.fail(path, f"its model entry must describe one of {sorted(MODELS)}")
    if config.get("dtype") not in FLOAT_DTYPES:
        raise npz.fail(
            path, f"its dtype must be one of {FLOAT_DTYPES}, got {shown(config.get('dtype'))}"
        )
    for key, ok in (
        ("init", lambda v: v in (*RECURRENT_INITS, "given", None)),
        ("weight_init_std", lambda v: v is None or is_real(v)),
        ("init_scale", lambda v: v is None or (is_real(v) and v > 0)),
        ("seed", lambda v: v is None or _is_int(v)),
    ):
        if not ok(config.get(key)):
            raise npz.fail(path, f"its model entry {key!r} is {shown(config.get(key))}")
    history = meta["history"]
    if not isinstance(history, list) or not all(
        isinstance(h, list) and len(h) == 2 and _is_int(h[0]) and is_real(h[1]) for h in history
    ):
        raise npz.fail(path, "its history must be a list of [iteration, finite loss] pairs")
    behind = _behind(history, meta["step"])
    if behind:
        raise npz.fail(path, behind)
    arrays = meta["arrays"]
    if not isinstance(arrays, dict) or not all(
        isinstance(info, dict)
        and set(info) == {"shape", "dtype"}
        and isinstance(info["shape"], list)
        and all(_is_int(n) for n in info["shape"])
        and info["dtype"] in ("<f4", "<f8", ">f4", ">f8")
        for info in arrays.values()
    ):
        raise npz.fail(path, "its list of arrays must give each a shape and a float dtype")
    _check_optimizer(path, meta["optimizer"])
    return meta


def _check_optimizer(path: Path, spec: Any) -> None:
    """``spec`` is None or ``{"name": a known optimiser, its hyperparameters...}``, each
    a finite number its constructor takes and accepts."""
    if spec is None:
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise npz.fail(path, "its optimizer must be null or a dict with a name")
    if spec["name"] not in OPTIMIZERS:
        raise npz.fail(
            path, f"unknown optimizer {shown(spec['name'])}; expected one of {sorted(OPTIMIZERS)}"
        )
    cls = OPTIMIZERS[spec["name"]]
    accepted = set(inspect.signature(cls).parameters)
    hyper = {k: v for k, v in spec.items() if k != "name"}
    if not set(hyper) <= accepted or not all(is_real(v) for v in hyper.values()):
        raise npz.fail(
            path,
            f"its optimizer {spec['name']} has hyperparameters {shown(hyper)}; it takes "
            f"numbers for {sorted(accepted)}",
        )
    try:
        cls(**hyper)
    except XpnnError as exc:
        raise npz.fail(path, f"its optimizer cannot be rebuilt ({exc})") from None


def _state_shapes(
    spec: Mapping[str, Any] | None, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """The optimiser state a checkpoint must hold for parameters of ``shapes``: the keys
    and shapes of the saved optimiser's ``init`` (none for SGD or without an optimiser)."""
    if spec is None:
        return {}
    return _optimizer(spec).state_shapes(shapes)


def _optimizer(spec: Mapping[str, Any]) -> Optimizer:
    """The optimiser a checked ``spec`` (``{"name": ..., **hyperparameters}``) describes."""
    return OPTIMIZERS[spec["name"]](**{k: v for k, v in spec.items() if k != "name"})


def _check_headers(
    path: Path, meta: Mapping[str, Any], members: Mapping[str, npz.Member]
) -> dict[str, tuple[int, ...]]:
    """The members are exactly the arrays the metadata lists, with its shapes and
    dtypes; the parameters are those the model's configuration implies; the optimiser
    state is complete. Returns the parameter shapes."""
    listed = meta["arrays"]
    missing = sorted(set(listed) - set(members))
    if missing:
        raise npz.fail(path, f"missing the array {shown(missing[0])}")
    unlisted = sorted(set(members) - set(listed) - {"meta", "sha256"})
    if unlisted:
        raise npz.fail(path, f"holds arrays the metadata does not list: {shown(unlisted)}")
    for key, info in listed.items():
        member = members[key]
        if list(member.shape) != info["shape"] or member.dtype.str != info["dtype"]:
            got = f"{member.dtype.str} {member.shape}"
            raise npz.fail(path, f"{key!r} is {got}; the metadata says {shown(info)}")
    config = _architecture(meta["model"])
    try:
        shapes = MODELS[config["model"]].configured(config).param_shapes
    except XpnnError as exc:
        problem = f"its model cannot be rebuilt: configuration incomplete or wrong ({exc})"
        raise npz.fail(path, problem) from None
    dtype = meta["model"]["dtype"]
    params = {k[len(PARAM) :]: m for k, m in members.items() if k.startswith(PARAM)}
    state = {k[len(OPTIM) :]: m for k, m in members.items() if k.startswith(OPTIM)}
    strays = sorted(set(listed) - {PARAM + k for k in params} - {OPTIM + k for k in state})
    if strays:
        raise npz.fail(path, f"holds arrays that are neither parameters nor state: {shown(strays)}")
    want = _state_shapes(meta["optimizer"], shapes)
    for kind, got, need in (("parameters", params, shapes), ("optimizer state", state, want)):
        if set(got) != set(need):
            raise npz.fail(
                path,
                f"holds the {kind} {shown(sorted(got))}; its model and optimizer need "
                f"{sorted(need)}",
            )
        for key, member in got.items():
            if member.shape != need[key] or member.dtype.name != dtype:
                raise npz.fail(
                    path,
                    f"{kind} {key} is {member.dtype.name} {member.shape}; the model needs "
                    f"{dtype} {need[key]}",
                )
    return shapes


def load(
    path: str | os.PathLike[str],
    backend: str = "numpy",
    device: Any = None,
    dtype: str | None = None,
) -> Checkpoint:
    """Read a checkpoint written by ``save`` onto ``backend`` and ``device``, in ``dtype``
    (the saved dtype if None).

    The file is checked before it is read: a member larger than its header, a compressed
    member, metadata of the wrong types and arrays that do not fit the model are refused
    without inflating anything, so a hostile file costs no more memory than its own size.

    Raises
    ------
    CheckpointError
        The file is missing, truncated or corrupt, holds an object (pickle) array, lacks
        an array, has one of the wrong shape or dtype, metadata that do not fit the
        schema, or incomplete or non-finite optimiser state; the message names the file.
    BackendUnavailable
        ``backend`` cannot run here.
    """
    path = Path(path)
    if not path.exists():
        raise npz.fail(path, "no such checkpoint file")
    if not path.is_file():
        raise npz.fail(path, "not a file (a checkpoint is one .npz file)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = npz.members(path, archive)
            meta_text = npz.read_text(path, archive, members, "meta")
            meta = _parse_meta(path, meta_text)
            _check_headers(path, meta, members)
            digest = npz.read_text(path, archive, members, "sha256")
            arrays = {k: npz.read_array(path, archive, members[k]) for k in meta["arrays"]}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError) as exc:
        raise npz.fail(path, f"not a readable .npz archive, truncated or corrupt ({exc})") from None
    except OSError as exc:  # a damaged offset (EINVAL on seek), or no permission to read
        raise npz.fail(
            path, f"cannot be read ({exc.strerror or exc}); truncated or corrupt?"
        ) from None
    except Exception as exc:  # zlib.error, a damaged .npy header (ValueError, SyntaxError)
        problem = shown(str(exc))
        raise npz.fail(
            path, f"corrupt archive or array data ({type(exc).__name__}: {problem})"
        ) from None
    if digest != _digest(meta_text, arrays):
        raise npz.fail(path, "checksum mismatch: the data were altered after saving")
    config = meta["model"]
    params = {k[len(PARAM) :]: a for k, a in arrays.items() if k.startswith(PARAM)}
    host_state = {k[len(OPTIM) :]: a for k, a in arrays.items() if k.startswith(OPTIM)}
    bad = sorted(k for k, a in host_state.items() if not npz.all_finite(a))
    if bad:
        raise npz.fail(path, f"optimizer state {bad} holds NaN or infinity")
    if meta["optimizer"] is not None:
        try:
            _optimizer(meta["optimizer"]).check_state_values(host_state)
        except XpnnValueError as exc:
            raise npz.fail(path, f"optimizer {exc}") from None
    where = {"backend": backend, "device": device, "dtype": dtype or config["dtype"]}
    try:
        model = MODELS[config["model"]].from_config(_architecture(config), params, **where)
        state = {k: model.asarray(a, name=OPTIM + k) for k, a in host_state.items()}
    except BackendUnavailable:
        raise
    except XpnnError as exc:
        raise npz.fail(path, f"its model cannot be rebuilt ({exc})") from None
    for key in RUN_KEYS:
        setattr(model, key, config.get(key))
    history = [(int(i), float(loss)) for i, loss in meta["history"]]
    return Checkpoint(
        model, state, meta["step"], history, dict(config), meta["optimizer"], meta["extra"], path
    )
