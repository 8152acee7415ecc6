"""Every refusal of bad input, proved once, on NumPy (array-api-strict where another
backend or device is the point): one test per cause, a cause being one reason a value is
refused. Each test walks the public entry points that share the cause's check with a few
representative bad values, and asserts the exception's class (an ``XpnnError``), the
argument it names (``exc.argument``; the name in the message where a raise site sets no
argument), a message of bounded length, and that nothing changed: the model's parameters,
and for anything that writes, the files. Messages are not pinned word for word.

Hostile checkpoint files, hostile callbacks and crash-and-resume: ``test_hostile.py``.
"""

# ruff: noqa: B023 - every lambda below is called at once, inside its loop

from __future__ import annotations

import contextlib
import importlib
import io
import math
import os
import re
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import cli, datasets
from xpnn.backends import Backend, backend_info, get_backend, registry
from xpnn.errors import (
    BackendUnavailable,
    NonFiniteError,
    XpnnAttributeError,
    XpnnError,
    XpnnTypeError,
    XpnnValueError,
)
from xpnn.optim import OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, RMSProp
from xpnn.training import checkpoint
from xpnn.training.loop import train
from xpnn.training.resume import Checkpointer
from xpnn.training.state import TrainState
from xpnn.training.step import make_step

NAN, INF = math.nan, math.inf
MAX_MESSAGE = 400  # fixed text plus at most ~80 characters of each value shown
LONG = "s" * 5000

NOT_POSITIVE = [0, -1.0, NAN, INF, -INF, "1.0", True, None, 10**400, 1 + 1j, [1.0]]
"""Values that are not a positive finite number."""
NOT_COUNTS = [0, -1, 1.5, "3", True, None, [3], 2**31, 2**63]
"""Values that are not a positive integer (a size, a count) within NumPy's limits."""
NOT_NAMES = ["softplus", "", ["sigmoid"], {"sigmoid": 1}, ("relu",), 3, b"relu", LONG]
"""Values that are not the name of a choice (None is a choice where it means a default)."""

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster: nox -s distributed (or XPNN_DISTRIBUTED=1)",
)


# -- the one assertion ------------------------------------------------------------------------


def _bits(tree: dict) -> dict[str, bytes]:
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in tree.items()}


def _files(folder: Path | None) -> dict[str, bytes] | None:
    """Every file and folder under ``folder`` with its contents; None if it does not exist."""
    if folder is None or not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"/"
        for p in sorted(folder.rglob("*"))
    }


def refused(
    call: Callable[[], Any],
    kind: type[XpnnError],
    argument: str | None,
    *,
    model: Any = None,
    folder: Path | None = None,
    case: object = "",
) -> XpnnError:
    """``call()`` raises ``kind`` naming ``argument`` (None: no argument is at fault) with
    a bounded message, and leaves ``model``'s parameters and ``folder``'s files as they
    were. ``case`` says which call in a test's walk this was."""
    assert issubclass(kind, XpnnError)
    params = None if model is None else _bits(model.params)
    files = _files(folder)
    with pytest.raises(kind) as info:
        call()
    exc, where = info.value, str(case)[:120]
    message = str(exc)
    if argument is not None:
        if exc.argument is not None:
            assert exc.argument == argument, f"{where}: names {exc.argument!r}: {message}"
        else:
            named = re.search(rf"(?<!\w){re.escape(argument)}(?!\w)", message)
            assert named, f"{where}: the message does not name {argument!r}: {message}"
    assert len(message) <= MAX_MESSAGE, f"{where}: {len(message)} characters: {message[:200]}"
    if model is not None:
        assert _bits(model.params) == params, f"{where}: a refused call changed the model"
    assert _files(folder) == files, f"{where}: a refused call wrote a file"
    return exc


# -- models and data used below ---------------------------------------------------------------


def _mlp(**kwargs: Any) -> xpnn.MLP:
    return xpnn.MLP([2, 3, 2], **{"seed": 0, **kwargs})


def _rnn(**kwargs: Any) -> xpnn.RNN:
    return xpnn.RNN(2, 3, 1, **{"seed": 0, **kwargs})


def _host(model: Any) -> dict[str, np.ndarray]:
    return {k: xpnn.to_numpy(v) for k, v in model.params.items()}


def _xd(net: Any) -> tuple[Any, Any]:
    """A good batch for ``net``: MLP ``(4, 2)``, ``(4, 2)``; RNN ``(5, 4, 2)``, ``(5, 4, 1)``."""
    if isinstance(net, xpnn.RNN):
        return net.asarray(np.ones((5, 4, 2))), net.asarray(np.ones((5, 4, 1)))
    return net.asarray(np.ones((4, 2))), net.asarray(np.eye(2)[[0, 1, 0, 1]])


def _stream(width: int = 2, fill: float = 1.0) -> datasets.SampleStream:
    return datasets.SampleStream(np.full((8, width), fill), np.eye(2)[np.arange(8) % 2], 2)


def _set_params(net: Any, params: Any) -> None:
    net.params = params


_GOOD: Any = object()


def _step_call(
    net: Any, *, params: Any = _GOOD, state: Any = _GOOD, x: Any = _GOOD, d: Any = _GOOD, opt=None
) -> Callable:
    """A call of ``make_step(net, opt)``'s step with the given arguments (the rest good)."""
    opt = opt or Adam(0.01)
    good_x, good_d = _xd(net)
    args = (
        net.params if params is _GOOD else params,
        opt.init(net.params) if state is _GOOD else state,
        good_x if x is _GOOD else x,
        good_d if d is _GOOD else d,
    )
    step = make_step(net, opt, compile="off")
    return lambda: step(*args)


def _strict():
    return xpnn.get_namespace("array_api_strict")


# -- backends, devices, dtypes ----------------------------------------------------------------


def test_an_unknown_backend():
    for name in ("nosuch", "Torch", "", LONG, ["numpy"], None):
        for call in (
            lambda: xpnn.MLP([2, 2], backend=name),
            lambda: xpnn.RNN(1, 1, 1, backend=name),
            lambda: xpnn.get_namespace(name),
            lambda: registry.unregister(name),
        ):
            refused(call, XpnnValueError, "backend", case=name)


def test_a_backend_that_is_not_installed_says_what_to_install(monkeypatch):
    real_import = importlib.import_module

    def fake_import(module: str, *args: Any, **kwargs: Any) -> Any:
        if module.split(".")[0] in ("torch", "jax", "array_api_strict"):
            raise ModuleNotFoundError(f"No module named {module!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    for name in ("torch", "jax", "array_api_strict"):
        backend = get_backend(name)
        monkeypatch.setattr(backend, "xp", None)
        exc = refused(lambda: xpnn.MLP([2, 2], backend=name), BackendUnavailable, None, case=name)
        assert name in str(exc) and backend.install_hint in str(exc)
        assert not backend_info(name).usable


def test_cupy_without_a_gpu_says_so(monkeypatch):
    def no_device() -> int:
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(get_backend("cupy"), "xp", None)
    exc = refused(lambda: xpnn.RNN(2, 2, 1, backend="cupy"), BackendUnavailable, None)
    assert "cupy" in str(exc) and "no CUDA device" in str(exc)
    assert backend_info("cupy").reason == str(exc)


def test_an_unknown_device():
    for device in ("nosuch", "tpu:7", 3, LONG):
        refused(lambda: _mlp(device=device), XpnnValueError, "device", case=device)
        refused(lambda: _rnn(device=device), XpnnValueError, "device", case=device)


def test_a_dtype_that_is_not_real_floating():
    for dtype in ("int32", "bool", "complex128", None, ["float64"], LONG):
        refused(lambda: _mlp(dtype=dtype), XpnnTypeError, "dtype", case=dtype)
        refused(lambda: _rnn(dtype=dtype), XpnnTypeError, "dtype", case=dtype)


# -- a model's architecture -------------------------------------------------------------------


def test_a_layer_width_that_is_not_a_positive_integer():
    for v in NOT_COUNTS:
        refused(lambda: xpnn.MLP([2, v, 1]), XpnnValueError, "sizes[1]", case=v)
        refused(lambda: xpnn.RNN(v, 3, 1), XpnnValueError, "input_size", case=v)
        refused(lambda: xpnn.RNN(2, v, 1), XpnnValueError, "hidden_size", case=v)
        refused(lambda: xpnn.RNN(2, 3, v), XpnnValueError, "output_size", case=v)


def test_sizes_that_are_not_a_list_of_widths():
    for sizes in (3, "23", [2], [], None, {"a": 2}, [[2, 3]], LONG):
        refused(lambda: xpnn.MLP(sizes), XpnnValueError, "sizes", case=sizes)


def test_an_unknown_activation():
    mlp, rnn = _host(_mlp()), _host(_rnn())
    for name in (*NOT_NAMES, None):
        calls = [
            ("output", lambda: _mlp(output=name)),
            ("output", lambda: _rnn(output=name)),
            ("output", lambda: xpnn.RNN.from_params(rnn, output=name)),
            ("hidden", lambda: _mlp(hidden=name)),
            ("hidden", lambda: xpnn.MLP.from_params(mlp, hidden=name)),
        ]
        if name is not None:  # an RNN's hidden=None: its cell's own activation
            calls.append(("hidden", lambda: _rnn(hidden=name)))
        for argument, call in calls:
            refused(call, XpnnValueError, argument, case=(argument, name))
    refused(lambda: _mlp(output="relu"), XpnnValueError, "output")  # a hidden one only


def test_an_unknown_loss():
    for name in ("hinge", "l1", None, ["mse"], LONG):
        refused(lambda: _mlp(loss=name), XpnnValueError, "loss", case=name)
        refused(lambda: _rnn(loss=name), XpnnValueError, "loss", case=name)
        refused(lambda: xpnn.MLP.from_params(_host(_mlp()), loss=name), XpnnValueError, "loss")


def test_cross_entropy_without_probabilities():
    refused(lambda: _mlp(output="identity", loss="cross_entropy"), XpnnValueError, "loss")
    refused(lambda: _rnn(output="identity", loss="cross_entropy"), XpnnValueError, "loss")


def test_an_unknown_init():
    for name in ("zeros", "orthogonal", None, ["std"], LONG):
        refused(lambda: _mlp(init=name), XpnnValueError, "init", case=name)
        refused(lambda: _rnn(init=name), XpnnValueError, "init", case=name)


def test_an_unknown_cell():
    for name in (*NOT_NAMES, None, "LSTM"):
        refused(lambda: _rnn(cell=name), XpnnValueError, "cell", case=name)


def test_a_weight_scale_that_is_not_positive_and_finite():
    for v in NOT_POSITIVE:
        refused(lambda: _mlp(init="std", weight_init_std=v), XpnnValueError, "weight_init_std")
        refused(lambda: _rnn(weight_init_std=v), XpnnValueError, "weight_init_std", case=v)


def test_the_identity_start_is_the_simple_rnns_with_a_positive_finite_scale():
    for cell in ("lstm", "gru"):  # the paper defines no identity start for a gated cell
        refused(lambda: _rnn(cell=cell, init="identity"), XpnnValueError, "init", case=cell)
    for v in [v for v in NOT_POSITIVE if v is not None]:  # None: the default scale, 1
        refused(
            lambda: _rnn(hidden="relu", init="identity", init_scale=v),
            XpnnValueError,
            "init_scale",
            case=v,
        )
    for init in ("std", "xavier", "he"):  # a scale means nothing without the identity
        refused(lambda: _rnn(init=init, init_scale=1.0), XpnnValueError, "init_scale", case=init)


def test_a_seed_that_is_not_a_non_negative_integer():
    x, d = np.ones((4, 2)), np.ones((4, 1))
    for seed in (-1, 1.5, "0", [[-1]], [1, -2], LONG):
        for call in (
            lambda: xpnn.MLP([2, 2], seed=seed),
            lambda: xpnn.RNN(2, 2, 1, seed=seed),
            lambda: datasets.linear(3, seed=seed),
            lambda: datasets.binary_addition(2, seed=seed),
            lambda: datasets.adding_problem(2, steps=4, seed=seed),
            lambda: datasets.SampleStream(x, d, 2, seed=seed),
            lambda: datasets.BinaryAdditionStream(2, seed=seed),
            lambda: datasets.AddingProblemStream(2, seed=seed),
        ):
            refused(call, XpnnValueError, "seed", case=seed)


# -- parameters -------------------------------------------------------------------------------


def test_params_that_are_not_a_dict():
    net = _mlp()
    for params in (None, [], "W1", [np.ones((2, 3))], 3):
        refused(lambda: _set_params(net, params), XpnnTypeError, "params", model=net)
        refused(lambda: xpnn.MLP.from_params(params), XpnnTypeError, "params", case=params)
        refused(lambda: xpnn.RNN.from_params(params), XpnnTypeError, "params", case=params)
        refused(_step_call(net, params=params), XpnnTypeError, "params", model=net)
        for cls in OPTIMIZERS.values():
            refused(lambda: cls().init(params), XpnnTypeError, "params", case=cls)
            state = cls().init(net.params)
            refused(lambda: cls().update(params, dict(net.params), state), XpnnTypeError, "params")


def test_params_with_other_names_than_the_models():
    net = _mlp()
    params = net.params
    for wrong in (
        {k: v for k, v in params.items() if k != "b2"},  # one missing
        {**params, "W3": params["W2"]},  # one more
        {**{k: v for k, v in params.items() if k != "W1"}, "w1": params["W1"]},  # renamed
        {1: params["W1"]},  # not a string
    ):
        refused(lambda: _set_params(net, wrong), XpnnValueError, "params", model=net)
        refused(_step_call(net, params=wrong), XpnnValueError, "params", model=net)
    host = _host(net)
    refused(lambda: xpnn.MLP.from_params({**host, "W9": host["W1"]}), XpnnValueError, "params")
    refused(lambda: xpnn.RNN.from_params({**_host(_rnn()), "b": 1.0}), XpnnValueError, "params")


def test_params_that_name_no_architecture():
    mlp, rnn = _host(_mlp()), _host(_rnn())
    for params in (
        {},
        {k: v for k, v in mlp.items() if k != "W1"},
        {**mlp, "W1": np.ones(2)},
        {1: np.ones((2, 3))},
    ):
        refused(lambda: xpnn.MLP.from_params(params), XpnnValueError, "params", case=params)
    for params in ({k: v for k, v in rnn.items() if k != "W_in"}, {**rnn, "W_out": np.ones(3)}):
        refused(lambda: xpnn.RNN.from_params(params), XpnnValueError, "params", case=params)


def test_a_parameter_of_the_wrong_shape():
    net, host = _mlp(), _host(_mlp())
    for key, bad in (("b1", np.zeros(2)), ("W2", np.ones((4, 2))), ("W1", np.ones((3, 2)))):
        if key != "W1":  # from_params reads the sizes off W1
            call = lambda: xpnn.MLP.from_params({**host, key: bad})  # noqa: E731
            refused(call, XpnnValueError, key, case=key)
        wrong = {**net.params, key: net.asarray(bad)}
        refused(lambda: _set_params(net, wrong), XpnnValueError, key, model=net)
        refused(_step_call(net, params=wrong), XpnnValueError, key, model=net)
    rnn = _host(_rnn())
    for key, bad in (("W", np.ones((2, 2))), ("W_out", np.ones((2, 1)))):
        refused(lambda: xpnn.RNN.from_params({**rnn, key: bad}), XpnnValueError, key, case=key)


def test_a_non_finite_parameter():
    net, host = _mlp(), _host(_mlp())
    one = host["W1"].copy()
    one[1, 2] = -INF  # in one place
    for bad in (np.full((2, 3), NAN), np.full((2, 3), INF), one):
        refused(lambda: xpnn.MLP.from_params({**host, "W1": bad}), NonFiniteError, "W1")
        wrong = {**net.params, "W1": net.asarray(bad)}
        refused(lambda: _set_params(net, wrong), NonFiniteError, "W1", model=net)
    rnn = _host(_rnn())
    refused(lambda: xpnn.RNN.from_params({**rnn, "W": rnn["W"] * INF}), NonFiniteError, "W")


def _not_real_numbers(shape: tuple[int, ...]) -> list:
    """Host values that are not real numbers of ``shape``: none may become an array."""
    good = np.ones(shape)
    return [
        good + 1j,
        (good + 0.5j).tolist(),
        np.full(shape, "1.0"),
        np.array([object()] * good.size, dtype=object).reshape(shape),
        None,
        {"a": 1},
        [[10**400] * shape[-1]] * shape[0],
        [[1.0, 2.0], [3.0]],
    ]


def test_host_data_that_are_not_real_numbers():
    net, host = _mlp(), _host(_mlp())
    for bad in _not_real_numbers((4, 2)):
        refused(lambda: net.asarray(bad), XpnnTypeError, "x", model=net, case=type(bad))
        refused(lambda: net.asarray(bad, name="d"), XpnnTypeError, "d", case=type(bad))
    for bad in _not_real_numbers((2, 3)):
        refused(lambda: xpnn.MLP.from_params({**host, "W1": bad}), XpnnTypeError, "W1")


def test_arrays_whose_meaning_a_plain_array_loses():
    """A masked array, a NumPy matrix: as a plain array they would mean something else."""
    net, host = _mlp(), _host(_mlp())
    with warnings.catch_warnings():  # NumPy discourages the matrix class: that is the point
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        odd = [np.ma.masked_array(np.ones((4, 2)), mask=False), np.asmatrix(np.ones((4, 2)))]
        odd_w1 = [np.ma.masked_array(host["W1"], mask=False), np.asmatrix(host["W1"])]
    for bad in odd:
        refused(lambda: net.asarray(bad), XpnnTypeError, "x", model=net, case=type(bad))
    for bad in odd_w1:
        refused(lambda: xpnn.MLP.from_params({**host, "W1": bad}), XpnnTypeError, "W1")


def test_a_sparse_torch_tensor(backend):
    """Runs in the torch session (the only one with torch installed)."""
    if backend != "torch":
        pytest.skip("a torch tensor: runs in the torch session")
    import torch

    net = xpnn.MLP([2, 3, 2], backend="torch")
    host = _host(net)
    sparse = torch.ones((4, 2), dtype=torch.float64).to_sparse()
    refused(lambda: net.asarray(sparse), XpnnTypeError, "x", model=net)
    sparse_w1 = torch.ones((2, 3), dtype=torch.float64).to_sparse()
    refused(
        lambda: xpnn.MLP.from_params({**host, "W1": sparse_w1}, backend="torch"),
        XpnnTypeError,
        "W1",
    )


# -- the arrays handed to a model's methods ---------------------------------------------------


def _calls(net: Any) -> dict[str, Callable]:
    """``call(x, d)`` for every public entry point that takes a batch (an MLP's ``(B, I)``,
    an RNN's ``(T, B, I)``)."""
    return {
        "forward": lambda x, d: net.forward(x),
        "predict": lambda x, d: net.predict(x),
        "loss": lambda x, d: net.loss(x, d),
        "loss_and_grad": lambda x, d: net.loss_and_grad(x, d),
        "backward": lambda x, d: net.backward(net.forward(_xd(net)[0])[1], d),
        "gradient_check": lambda x, d: xpnn.gradient_check(net, x, d),
        "step": lambda x, d: _step_call(net, x=x, d=d)(),
    }


def _walk_x(
    net: Any, bad: list, kind: type[XpnnError], argument: str, *, values: bool = False
) -> None:
    """Each bad input through every entry point that takes one (not ``backward``; not the
    step where the fault is in the ``values``: the step checks metadata only)."""
    calls = _calls(net)
    d = _xd(net)[1]
    skip = {"backward", "step"} if values else {"backward"}
    for x in bad:
        for name, call in calls.items():
            if name not in skip:
                refused(lambda: call(x, d), kind, argument, model=net, case=(name, x))


def _walk_d(
    net: Any, bad: list, kind: type[XpnnError], argument: str, *, values: bool = False
) -> None:
    """Each bad target through every entry point that takes one (not the step where the
    fault is in the ``values``, class labels included: the step takes floating rows)."""
    calls = _calls(net)
    x = _xd(net)[0]
    skip = {"forward", "predict", "step"} if values else {"forward", "predict"}
    for d in bad:
        for name, call in calls.items():
            if name not in skip:
                refused(lambda: call(x, d), kind, argument, model=net, case=(name, d))


def test_an_input_of_the_wrong_shape():
    mlp, rnn = _mlp(), _rnn()
    shapes = [(2,), (1, 4, 2), (), (4, 3)]
    _walk_x(mlp, [mlp.asarray(np.ones(s)) for s in shapes], XpnnValueError, "x")
    shapes = [(4, 2), (5, 4, 2, 1), (5, 4, 3)]
    _walk_x(rnn, [rnn.asarray(np.ones(s)) for s in shapes], XpnnValueError, "xs")


def test_an_empty_input():
    mlp, rnn = _mlp(), _rnn()
    _walk_x(mlp, [mlp.asarray(np.ones((0, 2)))], XpnnValueError, "x")
    _walk_x(rnn, [rnn.asarray(np.ones(s)) for s in ((0, 4, 2), (5, 0, 2))], XpnnValueError, "xs")


def test_a_non_finite_input():
    mlp, rnn = _mlp(), _rnn()
    values = (NAN, INF, -INF)
    bad = [mlp.asarray(np.full((4, 2), v)) for v in values]
    _walk_x(mlp, bad, NonFiniteError, "x", values=True)
    _walk_d(mlp, bad, NonFiniteError, "d", values=True)
    bad = [rnn.asarray(np.full((5, 4, 2), v)) for v in values]
    _walk_x(rnn, bad, NonFiniteError, "xs", values=True)
    bad = [rnn.asarray(np.full((5, 4, 1), v)) for v in values]
    _walk_d(rnn, bad, NonFiniteError, "ds", values=True)
    xs = _xd(rnn)[0]
    h0 = rnn.asarray(np.full((4, 3), NAN))
    refused(lambda: rnn.forward(xs, h0), NonFiniteError, "h0", model=rnn)
    stream = _stream(fill=NAN)
    refused(lambda: train(mlp, SGD(0.1), stream, iters=3), NonFiniteError, "x", model=mlp)


def test_an_input_of_a_non_floating_dtype():
    mlp, rnn = _mlp(), _rnn()
    _walk_x(mlp, [np.ones((4, 2), dtype=t) for t in (np.int32, bool)], XpnnTypeError, "x")
    _walk_d(mlp, [np.ones((4, 2), dtype=bool)], XpnnTypeError, "d")
    _walk_x(rnn, [np.ones((5, 4, 2), dtype=np.int64)], XpnnTypeError, "xs")
    _walk_d(rnn, [np.ones((5, 4, 1), dtype=np.int32)], XpnnTypeError, "ds")


def test_an_input_of_another_floating_dtype():
    mlp, rnn = _mlp(), _rnn()
    _walk_x(mlp, [np.ones((4, 2), dtype=np.float32)], XpnnTypeError, "x")
    _walk_x(rnn, [np.ones((5, 4, 2), dtype=np.float32)], XpnnTypeError, "xs")
    single = _mlp(dtype="float32")  # float64 data to a float32 model's step
    x, d = _xd(_mlp())
    refused(_step_call(single, x=x, d=d), XpnnTypeError, "x", model=single)


def test_an_input_that_is_not_an_array():
    mlp, rnn = _mlp(), _rnn()
    _walk_x(mlp, [[[1.0, 2.0]], 1.0, "x", None], XpnnTypeError, "x")
    _walk_d(mlp, [np.eye(2)[[0, 1, 0, 1]].tolist()], XpnnTypeError, "d")
    _walk_x(rnn, [[[[1.0, 0.0]]], np.ones((5, 4, 2)).tolist()], XpnnTypeError, "xs")


def test_arrays_of_another_backend():
    """Mixed backends: arrays of array-api-strict handed to a NumPy model."""
    xp = _strict()
    mlp, rnn = _mlp(), _rnn()

    def strict(shape: tuple[int, ...]) -> Any:
        return xp.ones(shape, dtype=xp.float64)

    _walk_x(mlp, [strict((4, 2))], XpnnTypeError, "x")
    _walk_d(mlp, [strict((4, 2))], XpnnTypeError, "d")
    _walk_x(rnn, [strict((5, 4, 2))], XpnnTypeError, "xs")
    _walk_d(rnn, [strict((5, 4, 1))], XpnnTypeError, "ds")
    refused(lambda: rnn.forward(_xd(rnn)[0], strict((4, 3))), XpnnTypeError, "h0", model=rnn)
    wrong = {**mlp.params, "W1": strict((2, 3))}
    refused(lambda: _set_params(mlp, wrong), XpnnTypeError, "W1", model=mlp)
    refused(_step_call(mlp, params=wrong), XpnnTypeError, "W1", model=mlp)


def test_arrays_on_another_device():
    """array-api-strict has a second device: its arrays there, to a model on its first."""
    xp = _strict()
    import array_api_strict

    other = array_api_strict.Device("device1")
    net = xpnn.MLP([2, 3, 2], backend="array_api_strict")

    def there(shape: tuple[int, ...]) -> Any:
        return xp.ones(shape, dtype=xp.float64, device=other)

    _walk_x(net, [there((4, 2))], XpnnTypeError, "x")
    _walk_d(net, [there((4, 2))], XpnnTypeError, "d")
    wrong = {**net.params, "b1": there((3,))}
    refused(lambda: _set_params(net, wrong), XpnnTypeError, "b1", model=net)


def test_targets_of_the_wrong_shape():
    mlp, rnn = _mlp(), _rnn()
    # (3, 2): another batch; (4, 3): another width; (4,): floats need rows; (4, 1): broadcasts
    shapes = [(3, 2), (4, 3), (4,), (4, 1)]
    _walk_d(mlp, [mlp.asarray(np.ones(s)) for s in shapes], XpnnValueError, "d")
    shapes = [(6, 4, 1), (5, 3, 1), (5, 4, 2), (5, 4)]
    _walk_d(rnn, [rnn.asarray(np.ones(s)) for s in shapes], XpnnValueError, "ds")
    last = _rnn(many_to_one=True, output="identity")  # one target a sequence: (B, O)
    _walk_d(last, [last.asarray(np.ones(s)) for s in ((5, 4, 1), (3, 1))], XpnnValueError, "ds")


def _labels(values: list) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def test_class_labels_out_of_range():
    mlp = _mlp()  # softmax, cross-entropy: 2 classes
    _walk_d(mlp, [_labels([0, 1, 2, 1]), _labels([0, -1, 0, 1])], XpnnValueError, "d", values=True)
    rnn = xpnn.RNN(2, 3, 3, output="softmax", loss="cross_entropy")
    labels = [_labels([[0, 1, 2, 3]] * 5), _labels([[0, 1, -1, 0]] * 5)]
    _walk_d(rnn, labels, XpnnValueError, "ds", values=True)


def test_class_labels_of_the_wrong_shape():
    mlp = _mlp()
    labels = [_labels([0, 1, 1]), np.ones((4, 2), dtype=np.int64)]
    _walk_d(mlp, labels, XpnnValueError, "d", values=True)
    rnn = xpnn.RNN(2, 3, 3, output="softmax", loss="cross_entropy")
    _walk_d(rnn, [_labels([[0, 1, 2]] * 5)], XpnnValueError, "ds", values=True)


def test_class_labels_for_a_loss_without_classes():
    net = _mlp(output="sigmoid", loss="mse")
    _walk_d(net, [_labels([0, 1, 0, 1])], XpnnTypeError, "d")


def test_an_initial_state_of_the_wrong_shape():
    net = _rnn()
    xs = _xd(net)[0]
    for shape in ((3, 3), (3,), (4, 3, 1)):
        h0 = net.asarray(np.ones(shape))
        refused(lambda: net.forward(xs, h0), XpnnValueError, "h0", model=net, case=shape)
        refused(lambda: net.predict(xs, h0), XpnnValueError, "h0", model=net, case=shape)


def test_a_cache_that_forward_did_not_make():
    mlp, rnn = _mlp(), _rnn()
    (x, d), (xs, ds) = _xd(mlp), _xd(rnn)
    rnn_cache = xpnn.RNN(2, 3, 2).forward(mlp.asarray(np.ones((1, 4, 2))))[1]
    for cache in ({}, None, (x, d), rnn_cache):
        refused(lambda: mlp.backward(cache, d), XpnnValueError, "cache", model=mlp, case=cache)
    mlp_cache = mlp.forward(x)[1]
    for cache in ({}, (xs, ds), mlp_cache):
        refused(lambda: rnn.backward(cache, ds), XpnnValueError, "cache", model=rnn, case=cache)


def test_a_cache_of_another_model():
    mlp, rnn = _mlp(), _rnn()
    (x, d), (xs, ds) = _xd(mlp), _xd(rnn)
    for other, argument in (
        (xpnn.MLP([2, 5, 2]), "cache.params['W1']"),
        (xpnn.MLP([2, 3, 3, 2]), "cache"),
    ):
        cache = other.forward(x)[1]
        refused(lambda: mlp.backward(cache, d), XpnnValueError, argument, model=mlp)
    cache = xpnn.RNN(2, 4, 1).forward(xs)[1]
    refused(lambda: rnn.backward(cache, ds), XpnnValueError, "cache.params['W_in']", model=rnn)
    xp = _strict()
    strict = xpnn.MLP([2, 3, 2], backend="array_api_strict")
    cache = strict.forward(xp.ones((4, 2), dtype=xp.float64))[1]
    refused(lambda: mlp.backward(cache, d), XpnnTypeError, "cache.params['W1']", model=mlp)


# -- training settings ------------------------------------------------------------------------


def _train(net: Any, **kwargs: Any) -> Callable:
    stream = datasets.BinaryAdditionStream(2, bits=4) if isinstance(net, xpnn.RNN) else _stream()
    args = {"optimizer": SGD(0.1), "stream": stream, "iters": 3} | kwargs
    return lambda: train(net, args.pop("optimizer"), args.pop("stream"), **args)


def test_a_truncation_that_is_not_a_positive_integer():
    net = _rnn()
    xs, ds = _xd(net)
    for v in (0, -1, 1.5, True, "2", 2**63):
        for call in (
            lambda: net.backward(net.forward(xs)[1], ds, truncate=v),
            lambda: net.loss_and_grad(xs, ds, truncate=v),
            lambda: xpnn.gradient_check(net, xs, ds, truncate=v),
            lambda: make_step(net, SGD(0.1), truncate=v),
            _train(net, truncate=v),
        ):
            refused(call, XpnnValueError, "truncate", model=net, case=v)


def test_truncation_of_a_model_without_time():
    net = _mlp()
    x, d = _xd(net)
    for call in (
        lambda: make_step(net, SGD(0.1), truncate=2),
        lambda: xpnn.gradient_check(net, x, d, truncate=2),
        _train(net, truncate=2),
    ):
        refused(call, XpnnValueError, "truncate", model=net)


def test_a_clip_that_is_not_positive_and_finite():
    net = _rnn()
    for v in NOT_POSITIVE:
        if v is None:  # no clipping
            continue
        refused(lambda: make_step(net, SGD(0.1), clip=v), XpnnValueError, "clip", case=v)
        refused(_train(net, clip=v), XpnnValueError, "clip", model=net, case=v)


def test_a_count_of_iterations_that_is_not_a_positive_integer():
    net = _rnn()
    for v in NOT_COUNTS:
        for argument in ("iters", "log_every", "on_step_every"):
            call = _train(net, **{argument: v}, on_step=lambda state: None)
            refused(call, XpnnValueError, argument, model=net, case=(argument, v))
        if v is not None:
            refused(lambda: make_step(net, SGD(0.1), steps=v), XpnnValueError, "steps", case=v)


def test_a_model_that_is_not_an_xpnn_model(tmp_path):
    net = _mlp()
    x, d = _xd(net)
    folder = tmp_path / "run"
    saver = Checkpointer(folder, every=1, settings={})
    for model in (None, "MLP", net.core, object()):
        for call in (
            lambda: train(model, SGD(0.1), _stream(), iters=3),
            lambda: make_step(model, SGD(0.1)),
            lambda: xpnn.gradient_check(model, x, d),
            lambda: checkpoint.save(folder / "c.npz", model, SGD(0.1)),
            lambda: saver.save(model, SGD(0.1), TrainState(2, net.params, {}, ()), 8),
        ):
            refused(call, XpnnTypeError, "model", folder=tmp_path, case=model)


def test_an_optimizer_that_is_not_an_xpnn_optimizer():
    net = _mlp()
    for opt in (None, "sgd", SGD, object()):
        refused(_train(net, optimizer=opt), XpnnTypeError, "optimizer", model=net, case=opt)
        refused(lambda: make_step(net, opt), XpnnTypeError, "optimizer", case=opt)


def test_a_stream_that_is_not_a_stream():
    net = _mlp()
    for stream in ((np.ones((4, 2)), np.ones((4, 2))), [np.ones(2)], None, np.ones((8, 2))):
        refused(_train(net, stream=stream), XpnnTypeError, "stream", model=net, case=stream)


def test_a_stream_with_its_batch_on_another_axis():
    net = _rnn()
    stream = datasets.SampleStream(np.ones((8, 5, 2)), np.ones((8, 5, 1)), 2)  # axis 0
    refused(_train(net, stream=stream), XpnnValueError, "stream", model=net)


def test_a_stream_whose_data_do_not_fit_the_model():
    mlp = _mlp()
    refused(_train(mlp, stream=_stream(width=3)), XpnnValueError, "x", model=mlp)
    rnn = xpnn.RNN(3, 3, 1)  # binary addition has 2 inputs
    refused(_train(rnn), XpnnValueError, "xs", model=rnn)


def test_a_stream_that_cannot_draw_a_batch():
    class Unbounded(datasets.SampleStream):
        """A stream whose batches are too big to make (as 10**9 rows of a wide x are)."""

        def batches(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            raise MemoryError("Unable to allocate 7.45 TiB")

    net = _mlp()
    stream = Unbounded(np.ones((8, 2)), np.ones((8, 2)), 2)
    refused(_train(net, stream=stream), XpnnValueError, "stream", model=net)


def test_a_resume_state_that_is_not_a_train_state():
    net = _mlp()
    for state in ({}, (0, net.params, {}, ()), "state", 0):
        refused(_train(net, resume_from=state), XpnnTypeError, "resume_from", model=net)


def test_a_resume_state_past_the_run_or_before_its_start():
    net = _mlp()
    for step in (-1, 4, "0", 1.5, None):
        state = TrainState(step, net.params, None, ())
        refused(_train(net, resume_from=state), XpnnValueError, "resume_from.step", model=net)


def _spoiled(opt: Any, params: dict, key: str, value: float) -> dict:
    """``opt.init(params)`` with state array ``key`` filled with ``value``."""
    state = opt.init(params)
    return {**state, key: np.full(state[key].shape, value)}


BAD_STATE_VALUES = [
    (Adam, "t", -3.0),  # a step count below zero
    (Adam, "t", 2.5),  # or not whole
    (Adam, "v.W", -1.0),  # squared gradients below zero
    (RMSProp, "h.W", -1.0),
    (AdaGrad, "h.W", -1.0),
    (Momentum, "v.W", NAN),
]
"""Optimiser state values that no run reaches (RNN parameter names)."""


def test_optimizer_state_values_no_run_reaches():
    net = _rnn()
    for cls, key, value in BAD_STATE_VALUES:
        state = _spoiled(cls(0.1), net.params, key, value)
        begin = TrainState(0, net.params, state, ())
        call = _train(net, optimizer=cls(0.1), resume_from=begin)
        refused(call, XpnnValueError, f"state[{key!r}]", model=net, case=(cls, key, value))


def test_optimizer_state_that_is_not_this_optimizers():
    net = _mlp()
    params = net.params
    adam = Adam(0.01)
    good = adam.init(params)
    wider = xpnn.MLP([2, 6, 2])
    for state in (
        Momentum().init(params),  # another optimiser's
        {**good, 1: params["W1"]},  # a key too many
        {k: v for k, v in good.items() if k != "t"},  # a key short
        Adam().init(wider.params),  # other shapes
    ):
        refused(lambda: adam.update(params, dict(params), state), XpnnValueError, "state")
        refused(_step_call(net, state=state, opt=adam), XpnnValueError, "state", model=net)
        begin = TrainState(0, params, state, ())
        refused(_train(net, optimizer=adam, resume_from=begin), XpnnValueError, "state", model=net)
    for state in (None, [], "state"):
        refused(lambda: adam.update(params, dict(params), state), XpnnTypeError, "state")


# -- optimisers -------------------------------------------------------------------------------


def test_a_learning_rate_that_is_not_positive_and_finite():
    for v in NOT_POSITIVE:
        for cls in OPTIMIZERS.values():
            refused(lambda: cls(v), XpnnValueError, "lr", case=(cls, v))
            refused(lambda: cls(0.1).with_(lr=v), XpnnValueError, "lr", case=(cls, v))


def test_a_rate_outside_its_interval():
    for v in (1, 1.5, -0.5, NAN, INF, "0.9", None, True):
        for cls, argument in ((Momentum, "momentum"), (RMSProp, "decay")):
            refused(lambda: cls(0.1, **{argument: v}), XpnnValueError, argument, case=v)
        for argument in ("beta1", "beta2"):
            refused(lambda: Adam(0.1, **{argument: v}), XpnnValueError, argument, case=v)
    refused(lambda: Momentum(0.1, momentum=0), XpnnValueError, "momentum")  # (0, 1)


def test_a_hyperparameter_the_optimizer_does_not_take():
    for name, cls in OPTIMIZERS.items():
        refused(lambda: cls(0.1).with_(nesterov=True), XpnnValueError, "nesterov", case=name)


def test_optimizers_are_frozen():
    for name, cls in OPTIMIZERS.items():
        opt = cls(0.1)
        for attribute in ("lr", "beta1", "anything"):
            refused(lambda: setattr(opt, attribute, 1e-4), XpnnAttributeError, attribute)
        refused(lambda: delattr(opt, "lr"), XpnnAttributeError, "lr", case=name)
        assert opt.lr == 0.1
        other = opt.with_(lr=1e-4)  # the way to a new learning rate
        assert type(other) is cls and other is not opt and opt.lr == 0.1
        assert other.hyperparameters == {**opt.hyperparameters, "lr": 1e-4}


def test_gradients_keyed_unlike_the_parameters():
    params = _mlp().params
    for grads in (
        {k: v for k, v in params.items() if k != "b2"},
        {**params, "W3": params["W2"]},
        {**{k: v for k, v in params.items() if k != "W1"}, "w1": params["W1"]},
    ):
        for cls in OPTIMIZERS.values():
            opt = cls(0.1)
            state = opt.init(params)
            refused(lambda: opt.update(params, grads, state), XpnnValueError, "grads", case=cls)


def test_params_an_optimizer_cannot_hold():
    params = _mlp().params
    for cls in OPTIMIZERS.values():
        refused(lambda: cls().init({}), XpnnValueError, "params", case=cls)
        for bad in (
            dict(enumerate(params.values())),  # keys that are not names
            {k: xpnn.to_numpy(p).tolist() for k, p in params.items()},  # lists
            {k: p.astype(np.int32) for k, p in params.items()},  # integers
        ):
            refused(lambda: cls().init(bad), XpnnTypeError, "params", case=cls)


# -- gradient checks --------------------------------------------------------------------------


def test_a_gradient_check_of_a_float32_model():
    net = _mlp(dtype="float32")
    x, d = net.asarray(np.ones((2, 2))), net.asarray(np.eye(2))
    refused(lambda: xpnn.gradient_check(net, x, d), XpnnTypeError, "model", model=net)


def test_a_finite_difference_step_outside_zero_one():
    net = _mlp()
    x, d = _xd(net)
    for h in (0, -1e-4, 1, NAN, INF, "1e-4", True, None):
        refused(lambda: xpnn.gradient_check(net, x, d, h=h), XpnnValueError, "h", case=h)


# -- the step ---------------------------------------------------------------------------------


def test_the_step_checks_each_structure_once(monkeypatch):
    """The step checks its arguments when it meets a structure; later calls with that
    structure skip the check, another is checked again, and a bad one is refused even
    after good calls. Checked or not, the numbers are the same."""
    net = _mlp()
    opt = Adam(0.01)
    x, d = _xd(net)
    core_type = type(net.core)
    calls = []
    check_batch = core_type.check_batch

    def counted(self: Any, *args: Any) -> None:
        calls.append(args)
        check_batch(self, *args)

    monkeypatch.setattr(core_type, "check_batch", counted)
    step = make_step(net, opt, compile="off")
    params, state, _loss = step(net.params, opt.init(net.params), x, d)
    raw = step.fn(net.params, opt.init(net.params), x, d)
    assert _bits(params) == _bits(raw[0]) and _bits(state) == _bits(raw[1])
    params, state, _loss = step(params, state, x, d)  # the step's own output: one more at most
    checked = len(calls)
    for _ in range(3):
        params, state, _loss = step(params, state, x, d)
    assert len(calls) == checked
    step(params, state, x[:3, ...], d[:3, ...])  # another batch size
    assert len(calls) == checked + 1
    refused(lambda: step(params, state, x, d[:, :1]), XpnnValueError, "d")


def test_the_step_refuses_before_its_compiled_call(backend, device):
    """On every backend (compiled on JAX): a call that does not fit is refused by the
    step's check, never by the compiled function, even after good calls."""
    net = xpnn.MLP([2, 3, 2], seed=0, backend=backend, device=device, dtype="float32")
    opt = Adam(0.01)
    x = net.asarray(np.ones((4, 2)))
    d = net.asarray(np.eye(2)[[0, 1, 0, 1]])
    step = make_step(net, opt)
    params, state, _loss = step(net.params, opt.init(net.params), x, d)
    without = {k: v for k, v in params.items() if k != "b2"}
    refused(lambda: step(without, state, x, d), XpnnValueError, "params")
    refused(lambda: step(params, Momentum().init(params), x, d), XpnnValueError, "state")
    refused(lambda: step(params, state, x, d[:, :1]), XpnnValueError, "d")
    refused(lambda: step(params, state, xpnn.to_numpy(x).tolist(), d), XpnnTypeError, "x")


# -- datasets ---------------------------------------------------------------------------------


def test_a_dataset_size_that_is_not_a_positive_integer():
    x, d = np.ones((4, 2)), np.ones((4, 1))
    for v in (0, -1, 1.5, True, "3", None, 2**63):
        for argument, call in (
            ("n", lambda: datasets.linear(v)),
            ("n", lambda: datasets.binary_addition(v)),
            ("n", lambda: datasets.adding_problem(v)),
            ("n", lambda: datasets.blobs(v)),
            ("classes", lambda: datasets.blobs(4, classes=v)),
            ("n", lambda: datasets.sine_continuation(0.0, 0.1, v)),
            ("maxlen", lambda: datasets.sine_windows(v)),
            ("n_points", lambda: datasets.sine_windows(2, n_points=v)),
            ("n_test", lambda: datasets.sine_windows(2, n_test=v)),
            ("batch_size", lambda: datasets.SampleStream(x, d, v)),
            ("batch_size", lambda: datasets.BinaryAdditionStream(v)),
            ("batch_size", lambda: datasets.AddingProblemStream(v)),
        ):
            refused(call, XpnnValueError, argument, case=(argument, v))


def test_bits_out_of_range():
    top = datasets.MAX_ALL_PAIRS_BITS
    for v in (1, 0, 63, 99, 8.0, "8", None):
        refused(lambda: datasets.binary_addition(4, bits=v), XpnnValueError, "bits", case=v)
        refused(lambda: datasets.BinaryAdditionStream(2, bits=v), XpnnValueError, "bits", case=v)
    for v in (1, top + 1):
        refused(lambda: datasets.all_binary_additions(v), XpnnValueError, "bits", case=v)


def test_adding_sequences_shorter_than_two_steps():
    for v in (1, 0, -3, 2.5):
        refused(lambda: datasets.adding_problem(4, steps=v), XpnnValueError, "steps", case=v)
        refused(lambda: datasets.AddingProblemStream(2, steps=v), XpnnValueError, "steps", case=v)


def test_an_interval_that_is_not_finite_and_increasing():
    for low, high in ((1.0, 0.0), (1.0, 1.0), (NAN, 1.0), (0.0, INF), ("0", 1.0)):
        call = lambda: datasets.linear(3, low=low, high=high)  # noqa: E731
        refused(call, XpnnValueError, "low", case=(low, high))


def test_sine_windows_longer_than_the_training_points():
    for maxlen in (400, 450, 600):
        refused(lambda: datasets.sine_windows(maxlen), XpnnValueError, "maxlen", case=maxlen)


def test_sample_arrays_of_different_lengths():
    call = lambda: datasets.SampleStream(np.ones((4, 2)), np.ones((3, 1)), 2)  # noqa: E731
    refused(call, XpnnValueError, "d")


def test_a_batch_axis_that_is_not_an_axis():
    x, d = np.ones((4, 2)), np.ones(4)
    for axis in (3, -1, True, "0", 1.0):
        call = lambda: datasets.SampleStream(x, np.ones((4, 1)), 2, batch_axis=axis)  # noqa: E731
        refused(call, XpnnValueError, "batch_axis", case=axis)
    refused(lambda: datasets.SampleStream(x, d, 2, target_axis=1), XpnnValueError, "target_axis")


STREAMS = [
    datasets.SampleStream(np.ones((4, 2)), np.ones((4, 1)), 2),
    datasets.BinaryAdditionStream(2),
    datasets.AddingProblemStream(2, steps=4),
]


def test_batches_outside_the_run():
    """``batches(start, stop)`` needs iterations ``0 <= start < stop``, on every stream."""
    for stream in STREAMS:
        for start, stop, argument in (
            (-1, 1, "start"),
            (1.5, 3, "start"),
            ("0", 1, "start"),
            (3, 3, "stop"),
            (3, 2, "stop"),
            (0, 2.0, "stop"),
        ):
            call = lambda: stream.batches(start, stop)  # noqa: E731
            refused(call, XpnnValueError, argument, case=(type(stream), start, stop))


# -- messages and exception classes -----------------------------------------------------------


def test_a_long_value_is_shown_cut_short():
    """A 5,000-character value never makes a 5,000-character message."""
    net = _mlp()
    for argument, call in (
        ("bits", lambda: datasets.binary_addition(4, bits=LONG)),
        ("n", lambda: datasets.binary_addition(LONG)),
        ("steps", lambda: datasets.adding_problem(4, steps=LONG)),
        ("batch_size", lambda: datasets.BinaryAdditionStream(LONG)),
        ("hidden", lambda: _mlp(hidden=LONG)),
        ("backend", lambda: _mlp(backend=LONG)),
        ("dtype", lambda: _mlp(dtype=LONG)),
        ("device", lambda: _mlp(device=LONG)),
        ("seed", lambda: _mlp(seed=LONG)),
        ("lr", lambda: SGD(LONG)),
        ("sizes", lambda: xpnn.MLP(LONG)),
        ("params", lambda: _set_params(net, {LONG: net.params["W1"]})),
    ):
        exc = refused(call, XpnnError, argument, case=argument)
        assert "sss" in str(exc) and len(str(exc)) < 250, (argument, len(str(exc)))


def test_the_errors_are_builtin_exceptions_too():
    net = _mlp()
    with pytest.raises(ValueError, match="x must have shape"):
        net.forward(net.asarray(np.ones((4, 3))))
    with pytest.raises(TypeError, match="non-floating dtype"):
        net.forward(np.ones((4, 2), dtype=np.int32))
    with pytest.raises(AttributeError, match="frozen"):
        SGD(0.1).lr = 1.0  # type: ignore[misc]


# -- the backend registry ---------------------------------------------------------------------


class _Fake(Backend):
    """A complete backend over NumPy, under a name of its own."""

    name = "fake_lib"
    module = "numpy"

    def namespace(self, module: Any) -> Any:
        return get_backend("numpy").load()

    def is_namespace(self, xp: Any) -> bool:
        return False

    def is_array(self, x: Any) -> bool:
        return False


def _registry_refused(candidate: Any, kind: type[XpnnError]) -> None:
    """``register(candidate)`` is refused, and the registry works as before."""
    names, usable = tuple(registry.BACKENDS), xpnn.available_backends()
    refused(lambda: registry.register(candidate), kind, "backend", case=candidate)
    assert tuple(registry.BACKENDS) == names and xpnn.available_backends() == usable
    refused(lambda: registry.unregister("nosuch"), XpnnValueError, "backend")


def test_register_takes_a_backend_instance():
    for candidate in (None, "numpy", _Fake, Backend, get_backend):
        _registry_refused(candidate, XpnnTypeError)


def test_register_needs_an_identifier_no_backend_has():
    for name in (5, "my-lib", "", None, "numpy", "array_api_strict"):
        _registry_refused(type("Named", (_Fake,), {"name": name})(), XpnnValueError)
    for module in ("a-b", "", 3, None):
        _registry_refused(type("Moduled", (_Fake,), {"module": module})(), XpnnValueError)


def test_register_needs_the_backend_hooks():
    for hook in ("namespace", "is_namespace", "is_array"):
        lacking = type("Lacking", (_Fake,), {hook: getattr(Backend, hook)})
        _registry_refused(lacking(), XpnnTypeError)


def test_a_refused_registration_leaves_the_backends_usable():
    """After refusals, a good backend registers and unregisters as ever."""
    _registry_refused(None, XpnnTypeError)
    try:
        registry.register(_Fake())
        assert "fake_lib" in registry.BACKENDS
        _registry_refused(_Fake(), XpnnValueError)  # taken now
    finally:
        registry.unregister("fake_lib")
    assert "fake_lib" not in registry.BACKENDS


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpointer_settings_that_are_not_a_dict(tmp_path):
    folder = tmp_path / "new"  # must not be made
    for settings in (None, "abc", [("lr", 0.1)], 3):
        call = lambda: Checkpointer(folder, every=1, settings=settings)  # noqa: E731
        refused(call, XpnnTypeError, "settings", folder=tmp_path, case=settings)


def test_checkpointer_folder_that_is_not_a_path(tmp_path):
    for folder in (None, 3, ["a"], b"dir"):
        call = lambda: Checkpointer(folder, every=1, settings={})  # noqa: E731
        refused(call, XpnnTypeError, "folder", folder=tmp_path, case=folder)


def test_checkpointer_run_refuses_what_is_the_checkpoints(tmp_path):
    saver = Checkpointer(tmp_path, every=1, settings={})
    net, stream = _mlp(), _stream()
    for option, value in (("start", 2), ("on_step", lambda state: None), ("resume_from", None)):
        call = lambda: saver.run(net, SGD(0.1), stream, iters=4, **{option: value})  # noqa: E731
        refused(call, XpnnTypeError, option, model=net, folder=tmp_path, case=option)


def test_checkpointer_save_needs_a_train_state(tmp_path):
    saver = Checkpointer(tmp_path, every=1, settings={})
    net = _mlp()
    for state in ({}, None, (8, net.params, {}, ())):
        call = lambda: saver.save(net, SGD(0.1), state, 8)  # noqa: E731
        refused(call, XpnnTypeError, "state", folder=tmp_path, case=state)


def test_a_checkpoint_step_behind_its_history(tmp_path):
    net = _mlp()
    history = [(0, 1.0), (10, 0.5)]
    call = lambda: checkpoint.save(tmp_path / "a.npz", net, Adam(), step=3, history=history)  # noqa: E731
    refused(call, XpnnValueError, "history", folder=tmp_path)
    checkpoint.save(tmp_path / "b.npz", net, Adam(), step=10, history=history)  # a divergence's


# -- parallel training and the command line (nox -s distributed) ------------------------------


@DISTRIBUTED
def test_parallel_training_on_a_closed_client():
    """A closed client, and one whose cluster was closed, are refused naming
    ``parallel``: not a KeyError from deep inside dask."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    x, d = datasets.linear(40, seed=0)
    net = xpnn.MLP([2, 4, 1], hidden="tanh", output="identity", loss="mse", seed=0)
    stream = datasets.SampleStream(x, d, 10, seed=0)
    options = {"n_workers": 1, "processes": False, "host": "127.0.0.1", "protocol": "tcp"}
    for close in ("client", "cluster"):
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(
                distributed.LocalCluster(**options, dashboard_address=None)
            )
            client = stack.enter_context(distributed.Client(cluster.scheduler_address))
            (client if close == "client" else cluster).close()
            call = lambda: train(net, SGD(0.1), stream, iters=3, parallel=client)  # noqa: E731
            refused(call, XpnnValueError, "parallel", model=net, case=close)


@DISTRIBUTED
def test_cli_scheduler_with_more_workers_than_batch_rows():
    """``--scheduler`` with 3 workers and a batch of 2 rows: exit 2, one line on stderr
    naming the batch size and the workers, nothing trained."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    options = {"n_workers": 3, "processes": False, "host": "127.0.0.1", "protocol": "tcp"}
    out, err = io.StringIO(), io.StringIO()  # xpnn's output alone, not dask's log
    with distributed.LocalCluster(**options, dashboard_address=None) as cluster:
        args = ["train", "regression", "--batch-size", "2", "--scheduler"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main([*args, cluster.scheduler_address])
            except SystemExit as exc:  # argparse's way to exit 2
                status = exc.code
    out, err = out.getvalue(), err.getvalue()
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1 and "--batch-size 2" in lines[0] and "3 workers" in lines[0], err
    assert out == ""
