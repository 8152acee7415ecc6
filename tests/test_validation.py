"""Every public entry point refuses bad input with an xpnn error whose message names the
argument, what was expected and what arrived: never a traceback from deep inside an array
library, never silently wrong numbers."""

from __future__ import annotations

import importlib
import math
import sys
import types

import numpy as np
import pytest

import xpnn
from xpnn import backends as xpnn_backend
from xpnn import datasets
from xpnn.errors import BackendUnavailable, XpnnError, XpnnTypeError, XpnnValueError
from xpnn.optim import SGD, Adam, Momentum
from xpnn.training.loop import train

NAN, INF = math.nan, math.inf
TOP_BITS = datasets.MAX_ALL_PAIRS_BITS  # all_binary_additions' limit


def _raises(kind: type[Exception], match: str):
    """``pytest.raises`` that also insists on the xpnn hierarchy."""
    assert issubclass(kind, XpnnError)
    return pytest.raises(kind, match=match)


# -- constructors ---------------------------------------------------------------------

MLP_BAD = [
    ({"sizes": [2, 0, 1]}, XpnnValueError, r"sizes\[1\] must be an integer .* got 0"),
    ({"sizes": [2, -3]}, XpnnValueError, r"sizes\[1\] must be an integer .* got -3"),
    ({"sizes": [2.0, 3]}, XpnnValueError, r"sizes\[0\] must be an integer .* got 2\.0"),
    ({"sizes": [2, "3"]}, XpnnValueError, r"sizes\[1\] must be an integer .* got '3'"),
    ({"sizes": [2, True]}, XpnnValueError, r"sizes\[1\] must be an integer .* got True"),
    ({"sizes": [2]}, XpnnValueError, r"sizes must list at least an input and an output width"),
    ({"sizes": 3}, XpnnValueError, r"sizes must be a list of layer widths .* got 3"),
    ({"sizes": "23"}, XpnnValueError, r"sizes must be a list of layer widths .* got '23'"),
    ({"hidden": "softplus"}, XpnnValueError, r"unknown hidden activation 'softplus'; expected"),
    ({"output": "relu"}, XpnnValueError, r"unknown output activation 'relu'; expected"),
    ({"loss": "hinge"}, XpnnValueError, r"unknown loss 'hinge'; expected one of mse"),
    ({"output": "identity"}, XpnnValueError, r"loss 'cross_entropy' needs probabilities"),
    ({"init": "zeros"}, XpnnValueError, r"unknown init 'zeros'; expected one of std"),
    ({"weight_init_std": 0.0}, XpnnValueError, r"weight_init_std must be a positive .* got 0\.0"),
    ({"weight_init_std": -1.0}, XpnnValueError, r"weight_init_std must be .* got -1\.0"),
    ({"weight_init_std": NAN}, XpnnValueError, r"weight_init_std must be .* got nan"),
    ({"weight_init_std": INF}, XpnnValueError, r"weight_init_std must be .* got inf"),
    ({"weight_init_std": "0.1"}, XpnnValueError, r"weight_init_std must be .* got '0\.1'"),
    ({"dtype": "int32"}, XpnnTypeError, r"dtype must be a real floating dtype .* got 'int32'"),
    ({"dtype": "bool"}, XpnnTypeError, r"dtype must be a real floating dtype .* got 'bool'"),
    ({"dtype": "complex128"}, XpnnTypeError, r"dtype must be a real floating .* 'complex128'"),
    ({"dtype": None}, XpnnTypeError, r"dtype must be a real floating dtype .* got None"),
    ({"device": "nosuch"}, XpnnValueError, r"has no device 'nosuch'; its devices are"),
    ({"seed": -1}, XpnnValueError, r"seed must be a non-negative integer, got -1"),
    ({"seed": "a"}, XpnnValueError, r"seed must be a non-negative integer, got 'a'"),
    ({"seed": 1.5}, XpnnValueError, r"seed must be a non-negative integer, got 1\.5"),
]


@pytest.mark.parametrize(("kwargs", "kind", "match"), MLP_BAD)
def test_mlp_constructor_rejects(backend, device, kwargs, kind, match):
    kwargs = {"sizes": [2, 3, 2], "init": "std", "backend": backend, "device": device} | kwargs
    with _raises(kind, match):
        xpnn.MLP(kwargs.pop("sizes"), **kwargs)


RNN_BAD = [
    ({"input_size": 0}, XpnnValueError, r"input_size must be an integer .* got 0"),
    ({"hidden_size": 1.5}, XpnnValueError, r"hidden_size must be an integer .* got 1\.5"),
    ({"output_size": -2}, XpnnValueError, r"output_size must be an integer .* got -2"),
    ({"output_size": True}, XpnnValueError, r"output_size must be an integer .* got True"),
    ({"hidden": "softmax"}, XpnnValueError, r"unknown hidden activation 'softmax'"),
    ({"output": "tanh"}, XpnnValueError, r"unknown output activation 'tanh'"),
    ({"loss": "l1"}, XpnnValueError, r"unknown loss 'l1'"),
    ({"init": "orthogonal"}, XpnnValueError, r"unknown init 'orthogonal'"),
    ({"weight_init_std": -1.0}, XpnnValueError, r"weight_init_std must be a positive finite"),
    ({"weight_init_std": NAN}, XpnnValueError, r"weight_init_std must be .* got nan"),
    ({"dtype": "int64"}, XpnnTypeError, r"dtype must be a real floating dtype .* got 'int64'"),
    ({"device": "gpu9"}, XpnnValueError, r"has no device 'gpu9'"),
    ({"seed": -5}, XpnnValueError, r"seed must be a non-negative integer, got -5"),
]


@pytest.mark.parametrize(("kwargs", "kind", "match"), RNN_BAD)
def test_rnn_constructor_rejects(backend, device, kwargs, kind, match):
    args = {"input_size": 2, "hidden_size": 3, "output_size": 1, "backend": backend}
    args |= {"device": device} | kwargs
    with _raises(kind, match):
        xpnn.RNN(args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"), **args)


@pytest.mark.parametrize("model", ["MLP", "RNN"])
@pytest.mark.parametrize("name", ["nosuch", "numpyy", "Torch", ""])
def test_unknown_backend(model, name):
    build = {
        "MLP": lambda: xpnn.MLP([2, 2], backend=name),
        "RNN": lambda: xpnn.RNN(1, 1, 1, backend=name),
    }
    with _raises(XpnnValueError, rf"unknown backend '{name}'; expected one of numpy, "):
        build[model]()
    with _raises(XpnnValueError, rf"unknown backend '{name}'"):
        xpnn.get_namespace(name)


def test_unavailable_cupy_names_the_reason():
    info = xpnn_backend.backend_info("cupy")
    if info.usable:
        pytest.skip("cupy is usable here: this test needs a machine without it")
    with _raises(BackendUnavailable, r"cupy") as caught:
        xpnn.MLP([2, 2], backend="cupy")
    assert str(caught.value) == info.reason
    assert "install" in info.reason or "no CUDA device" in info.reason


@pytest.mark.parametrize("name", ["torch", "jax", "array_api_strict"])
def test_uninstalled_backend_says_what_to_install(monkeypatch, name):
    real_import = importlib.import_module

    def fake_import(module, *args, **kwargs):
        if module == name:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(module, *args, **kwargs)

    monkeypatch.delitem(xpnn_backend.registry._NAMESPACES, name, raising=False)
    monkeypatch.setattr(importlib, "import_module", fake_import)
    match = rf"{name} is not installed \(No module named '{name}'\); install it with: pip install"
    with _raises(BackendUnavailable, match):
        xpnn.MLP([2, 2], backend=name)
    assert not xpnn_backend.backend_info(name).usable


def test_cupy_without_a_gpu(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delitem(xpnn_backend.registry._NAMESPACES, "cupy", raising=False)
    with _raises(BackendUnavailable, r"cupy: no CUDA device \(RuntimeError: cudaErrorNoDevice"):
        xpnn.RNN(2, 2, 1, backend="cupy")


# -- from_params ----------------------------------------------------------------------


def _mlp_params(**changes):
    params = {"W1": np.ones((2, 3)), "b1": np.zeros(3), "W2": np.ones((3, 2)), "b2": np.zeros(2)}
    params |= changes
    return {k: v for k, v in params.items() if v is not None}


def _rnn_params(**changes):
    params = {"W_in": np.ones((2, 3)), "W": np.ones((3, 3)), "W_out": np.ones((3, 1))}
    params |= changes
    return {k: v for k, v in params.items() if v is not None}


FROM_PARAMS_BAD = [
    ("MLP", _mlp_params(b1=np.zeros(2)), XpnnValueError, r"b1 must have shape \(3,\), got \(2,\)"),
    (
        "MLP",
        _mlp_params(W2=np.ones((4, 2))),
        XpnnValueError,
        r"W2 must have shape \(3, 2\), got \(4, 2\)",
    ),
    (
        "MLP",
        _mlp_params(b2=None),
        XpnnValueError,
        r"params must have the keys \['W1', 'W2', 'b1', 'b2'\]",
    ),
    ("MLP", _mlp_params(W1=None), XpnnValueError, r"params must hold 2-D weights W1\.\.WL"),
    ("MLP", _mlp_params(W1=np.ones(2)), XpnnValueError, r"params must hold 2-D weights"),
    (
        "MLP",
        {},
        XpnnValueError,
        r"params must hold 2-D weights W1\.\.WL and biases b1\.\.bL, got \[\]",
    ),
    ("MLP", _mlp_params(extra=np.ones(1)), XpnnValueError, r"params must have the keys .* 'extra'"),
    (
        "MLP",
        _mlp_params(W1=np.full((2, 3), np.nan)),
        XpnnValueError,
        r"W1 contains NaN or infinity",
    ),
    (
        "MLP",
        _mlp_params(b1=np.array([0.0, np.inf, 0.0])),
        XpnnValueError,
        r"b1 contains NaN or inf",
    ),
    ("MLP", _mlp_params(W1="abc"), XpnnTypeError, r"W1 cannot be converted to a \w+ array"),
    ("MLP", _mlp_params(W1=[[1.0, 2.0], [3.0]]), XpnnTypeError, r"W1 cannot be converted"),
    (
        "MLP",
        [np.ones((2, 3))],
        XpnnTypeError,
        r"params must be a dict of parameter arrays, got list",
    ),
    (
        "RNN",
        _rnn_params(W=np.ones((2, 2))),
        XpnnValueError,
        r"W must have shape \(3, 3\), got \(2, 2\)",
    ),
    ("RNN", _rnn_params(W_out=np.ones((2, 1))), XpnnValueError, r"W_out must have shape \(3, 1\)"),
    (
        "RNN",
        _rnn_params(W=None),
        XpnnValueError,
        r"params must have the keys \['W', 'W_in', 'W_out'\]",
    ),
    ("RNN", _rnn_params(W_in=None), XpnnValueError, r"params must hold 2-D W_in, W and W_out"),
    (
        "RNN",
        _rnn_params(W_out=np.ones(3)),
        XpnnValueError,
        r"params must hold 2-D W_in, W and W_out",
    ),
    ("RNN", _rnn_params(b=np.zeros(3)), XpnnValueError, r"params must have the keys .*'b_out'"),
    ("RNN", _rnn_params(W=np.full((3, 3), np.inf)), XpnnValueError, r"W contains NaN or infinity"),
    ("RNN", "W_in", XpnnTypeError, r"params must be a dict of parameter arrays, got str"),
]


@pytest.mark.parametrize(("model", "params", "kind", "match"), FROM_PARAMS_BAD)
def test_from_params_rejects(backend, device, model, params, kind, match):
    cls = {"MLP": xpnn.MLP, "RNN": xpnn.RNN}[model]
    with _raises(kind, match):
        cls.from_params(params, backend=backend, device=device)


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        ("MLP", {"hidden": "gelu"}, r"unknown hidden activation 'gelu'"),
        ("MLP", {"output": "tanh"}, r"unknown output activation 'tanh'"),
        ("MLP", {"loss": "kl"}, r"unknown loss 'kl'"),
        ("RNN", {"hidden": "gelu"}, r"unknown hidden activation 'gelu'"),
        ("RNN", {"loss": "kl"}, r"unknown loss 'kl'"),
    ],
)
def test_from_params_rejects_unknown_names(backend, device, model, kwargs, match):
    cls, params = {"MLP": (xpnn.MLP, _mlp_params()), "RNN": (xpnn.RNN, _rnn_params())}[model]
    with _raises(XpnnValueError, match):
        cls.from_params(params, **kwargs, backend=backend, device=device)


# -- arrays handed to the models --------------------------------------------------------


def _foreign(backend: str, shape: tuple[int, ...]):
    """A float64 array of another backend than ``backend``."""
    if backend == "numpy":
        xp = xpnn.get_namespace("array_api_strict")
        return xp.ones(shape, dtype=xp.float64)
    return np.ones(shape)


def _other_device(net, shape: tuple[int, ...]):
    """A float64 array of the model's backend on another device, or skip."""
    xp = net.xp
    if net.backend == "array_api_strict":
        import array_api_strict

        return xp.ones(shape, dtype=xp.float64, device=array_api_strict.Device("device1"))
    if net.backend == "torch":
        return xp.ones(shape, dtype=xp.float64, device="meta")
    pytest.skip(f"{net.backend} has one device here, so no mixed devices to refuse")


def _typed(net, shape, dtype_name):
    xp = net.xp
    return xp.ones(shape, dtype=getattr(xp, dtype_name), device=net.device)


def _filled(net, shape, value):
    return net.asarray(np.full(shape, value))


# name -> (make bad x from the model, error, message); x is (B, 2) for the MLP below
MLP_BAD_X = {
    "1-D": (
        lambda n: n.asarray(np.ones(2)),
        XpnnValueError,
        r"x must have shape \(any, 2\), got \(2,\)",
    ),
    "3-D": (
        lambda n: n.asarray(np.ones((1, 4, 2))),
        XpnnValueError,
        r"x must have shape \(any, 2\), got \(1, 4, 2\)",
    ),
    "0-D": (lambda n: n.asarray(1.0), XpnnValueError, r"x must have shape \(any, 2\), got \(\)"),
    "width not W1's": (
        lambda n: n.asarray(np.ones((4, 3))),
        XpnnValueError,
        r"x must have shape \(any, 2\), got \(4, 3\)",
    ),
    "empty batch": (
        lambda n: n.asarray(np.ones((0, 2))),
        XpnnValueError,
        r"x is empty \(shape \(0, 2\)\)",
    ),
    "NaN": (lambda n: _filled(n, (4, 2), np.nan), XpnnValueError, r"x contains NaN or infinity"),
    "inf": (lambda n: _filled(n, (4, 2), np.inf), XpnnValueError, r"x contains NaN or infinity"),
    "-inf": (lambda n: _filled(n, (4, 2), -np.inf), XpnnValueError, r"x contains NaN or infinity"),
    "int32": (
        lambda n: _typed(n, (4, 2), "int32"),
        XpnnTypeError,
        r"x has non-floating dtype \S*int32 but the model computes in",
    ),
    "bool": (
        lambda n: _typed(n, (4, 2), "bool"),
        XpnnTypeError,
        r"x has non-floating dtype \S*bool",
    ),
    "float32": (
        lambda n: _typed(n, (4, 2), "float32"),
        XpnnTypeError,
        r"x has floating dtype \S*float32 but the model computes in \S*float64",
    ),
    "nested list": (
        lambda n: [[1.0, 2.0]],
        XpnnTypeError,
        r"x must be an array of the model's backend \(\w+\), got list",
    ),
    "python float": (
        lambda n: 1.0,
        XpnnTypeError,
        r"x must be an array of the model's backend \(\w+\), got float",
    ),
    "other backend": (
        lambda n: _foreign(n.backend, (4, 2)),
        XpnnTypeError,
        r"x is a (numpy|array_api_strict) array but the model runs on",
    ),
    "other device": (
        lambda n: _other_device(n, (4, 2)),
        XpnnTypeError,
        r"x is on device '\w+' but the model is on",
    ),
}
MLP_METHODS = {
    "forward": lambda n, x, d: n.forward(x),
    "predict": lambda n, x, d: n.predict(x),
    "loss": lambda n, x, d: n.loss(x, d),
    "loss_and_grad": lambda n, x, d: n.loss_and_grad(x, d),
}


def _mlp(backend, device, **kwargs):
    return xpnn.MLP([2, 3, 2], backend=backend, device=device, **kwargs)


@pytest.mark.parametrize("method", MLP_METHODS)
@pytest.mark.parametrize("case", MLP_BAD_X)
def test_mlp_rejects_bad_x(backend, device, case, method):
    net = _mlp(backend, device)
    make, kind, match = MLP_BAD_X[case]
    x, d = make(net), net.asarray(np.eye(2)[[0, 1, 0, 1]], name="d")
    with _raises(kind, match):
        MLP_METHODS[method](net, x, d)


def _labels(net, values):
    return net.xp.asarray(values, dtype=net.xp.int64, device=net.device)


MLP_BAD_D = {
    "batch length": (
        lambda n: n.asarray(np.ones((3, 2))),
        XpnnValueError,
        r"d must have shape \(4, 2\), got \(3, 2\)",
    ),
    "width": (
        lambda n: n.asarray(np.ones((4, 3))),
        XpnnValueError,
        r"d must have shape \(4, 2\), got \(4, 3\)",
    ),
    "1-D floats": (
        lambda n: n.asarray(np.ones(4)),
        XpnnValueError,
        r"d must have shape \(4, 2\), got \(4,\)",
    ),
    "NaN": (lambda n: _filled(n, (4, 2), np.nan), XpnnValueError, r"d contains NaN or infinity"),
    "inf": (lambda n: _filled(n, (4, 2), np.inf), XpnnValueError, r"d contains NaN or infinity"),
    "labels too large": (
        lambda n: _labels(n, [0, 1, 2, 1]),
        XpnnValueError,
        r"d holds class labels outside 0 \.\. 1",
    ),
    "negative label": (
        lambda n: _labels(n, [0, -1, 0, 1]),
        XpnnValueError,
        r"d holds class labels outside 0 \.\. 1",
    ),
    "labels batch length": (
        lambda n: _labels(n, [0, 1, 1]),
        XpnnValueError,
        r"d must have shape \(4,\), got \(3,\)",
    ),
    "integer one-hot rows": (
        lambda n: _typed(n, (4, 2), "int64"),
        XpnnValueError,
        r"d must have shape \(4,\), got \(4, 2\)",
    ),
    "bool": (
        lambda n: _typed(n, (4, 2), "bool"),
        XpnnTypeError,
        r"d has non-floating dtype \S*bool",
    ),
    "other backend": (
        lambda n: _foreign(n.backend, (4, 2)),
        XpnnTypeError,
        r"d is a (numpy|array_api_strict) array but the model runs on",
    ),
    "other device": (
        lambda n: _other_device(n, (4, 2)),
        XpnnTypeError,
        r"d is on device '\w+' but the model is on",
    ),
}
MLP_D_METHODS = {
    "loss": lambda n, x, d: n.loss(x, d),
    "loss_and_grad": lambda n, x, d: n.loss_and_grad(x, d),
    "backward": lambda n, x, d: n.backward(n.forward(x)[1], d),
}


@pytest.mark.parametrize("method", MLP_D_METHODS)
@pytest.mark.parametrize("case", MLP_BAD_D)
def test_mlp_rejects_bad_targets(backend, device, case, method):
    net = _mlp(backend, device)
    make, kind, match = MLP_BAD_D[case]
    with _raises(kind, match):
        MLP_D_METHODS[method](net, net.asarray(np.ones((4, 2))), make(net))


def test_mlp_integer_labels_need_softmax_cross_entropy(backend, device):
    net = _mlp(backend, device, output="sigmoid", loss="mse")
    with _raises(XpnnTypeError, r"d has non-floating dtype \S*int64"):
        net.loss(net.asarray(np.ones((4, 2))), _labels(net, [0, 1, 0, 1]))


@pytest.mark.parametrize(
    ("make_cache", "match"),
    [
        (lambda n, b, dev: {}, r"cache must be the MLPCache returned by forward, got dict"),
        (lambda n, b, dev: None, r"cache must be the MLPCache returned by forward, got NoneType"),
        (
            lambda n, b, dev: xpnn.MLP([2, 5, 2], backend=b, device=dev).forward(
                n.asarray(np.ones((4, 2)))
            )[1],
            r"cache\.params\['W1'\] must have shape \(2, 3\), got \(2, 5\)",
        ),
        (
            lambda n, b, dev: xpnn.MLP([2, 3, 3, 2], backend=b, device=dev).forward(
                n.asarray(np.ones((4, 2)))
            )[1],
            r"cache comes from a model with parameters \['W1', 'W2', 'W3'",
        ),
        (
            lambda n, b, dev: xpnn.RNN(2, 3, 2, backend=b, device=dev).forward(
                n.asarray(np.ones((1, 4, 2)))
            )[1],
            r"cache must be the MLPCache returned by forward, got RNNCache",
        ),
    ],
)
def test_mlp_backward_rejects_foreign_cache(backend, device, make_cache, match):
    net = _mlp(backend, device)
    with _raises(XpnnValueError, match):
        net.backward(make_cache(net, backend, device), net.asarray(np.eye(2)[[0, 1, 0, 1]]))


def test_mlp_cache_of_another_backend(backend, device):
    net = _mlp(backend, device)
    other = "array_api_strict" if backend == "numpy" else "numpy"
    cache = xpnn.MLP([2, 3, 2], backend=other).forward(
        xpnn.get_namespace(other).ones((4, 2), dtype=xpnn.get_namespace(other).float64)
    )[1]
    with _raises(XpnnTypeError, r"cache\.params\['W1'\] is a \w+ array but the model runs on"):
        net.backward(cache, net.asarray(np.eye(2)[[0, 1, 0, 1]]))


# RNN: xs is (T=5, B=4, I=2), ds (5, 4, 1)
RNN_BAD_XS = {
    "2-D": (
        lambda n: n.asarray(np.ones((4, 2))),
        XpnnValueError,
        r"xs must have shape \(any, any, 2\), got \(4, 2\)",
    ),
    "4-D": (
        lambda n: n.asarray(np.ones((5, 4, 2, 1))),
        XpnnValueError,
        r"xs must have shape \(any, any, 2\), got \(5, 4, 2, 1\)",
    ),
    "width": (
        lambda n: n.asarray(np.ones((5, 4, 3))),
        XpnnValueError,
        r"xs must have shape \(any, any, 2\), got \(5, 4, 3\)",
    ),
    "no time steps": (
        lambda n: n.asarray(np.ones((0, 4, 2))),
        XpnnValueError,
        r"xs is empty \(shape \(0, 4, 2\)\)",
    ),
    "empty batch": (
        lambda n: n.asarray(np.ones((5, 0, 2))),
        XpnnValueError,
        r"xs is empty \(shape \(5, 0, 2\)\)",
    ),
    "NaN": (
        lambda n: _filled(n, (5, 4, 2), np.nan),
        XpnnValueError,
        r"xs contains NaN or infinity",
    ),
    "inf": (
        lambda n: _filled(n, (5, 4, 2), -np.inf),
        XpnnValueError,
        r"xs contains NaN or infinity",
    ),
    "int64": (
        lambda n: _typed(n, (5, 4, 2), "int64"),
        XpnnTypeError,
        r"xs has non-floating dtype \S*int64",
    ),
    "float32": (
        lambda n: _typed(n, (5, 4, 2), "float32"),
        XpnnTypeError,
        r"xs has floating dtype \S*float32",
    ),
    "list": (
        lambda n: [[[1.0, 0.0]]],
        XpnnTypeError,
        r"xs must be an array of the model's backend",
    ),
    "other backend": (
        lambda n: _foreign(n.backend, (5, 4, 2)),
        XpnnTypeError,
        r"xs is a (numpy|array_api_strict) array but the model runs on",
    ),
    "other device": (
        lambda n: _other_device(n, (5, 4, 2)),
        XpnnTypeError,
        r"xs is on device '\w+' but the model is on",
    ),
}
RNN_METHODS = {
    "forward": lambda n, x, d: n.forward(x),
    "predict": lambda n, x, d: n.predict(x),
    "loss": lambda n, x, d: n.loss(x, d),
    "loss_and_grad": lambda n, x, d: n.loss_and_grad(x, d),
}


def _rnn(backend, device, **kwargs):
    return xpnn.RNN(2, 3, 1, backend=backend, device=device, **kwargs)


@pytest.mark.parametrize("method", RNN_METHODS)
@pytest.mark.parametrize("case", RNN_BAD_XS)
def test_rnn_rejects_bad_xs(backend, device, case, method):
    net = _rnn(backend, device)
    make, kind, match = RNN_BAD_XS[case]
    with _raises(kind, match):
        RNN_METHODS[method](net, make(net), net.asarray(np.ones((5, 4, 1))))


RNN_BAD_DS = {
    "time length": (
        lambda n: n.asarray(np.ones((6, 4, 1))),
        XpnnValueError,
        r"ds must have shape \(5, 4, 1\), got \(6, 4, 1\)",
    ),
    "batch length": (
        lambda n: n.asarray(np.ones((5, 3, 1))),
        XpnnValueError,
        r"ds must have shape \(5, 4, 1\), got \(5, 3, 1\)",
    ),
    "width": (
        lambda n: n.asarray(np.ones((5, 4, 2))),
        XpnnValueError,
        r"ds must have shape \(5, 4, 1\), got \(5, 4, 2\)",
    ),
    "2-D": (
        lambda n: n.asarray(np.ones((5, 4))),
        XpnnValueError,
        r"ds must have shape \(5, 4, 1\), got \(5, 4\)",
    ),
    "NaN": (
        lambda n: _filled(n, (5, 4, 1), np.nan),
        XpnnValueError,
        r"ds contains NaN or infinity",
    ),
    "int": (lambda n: _typed(n, (5, 4, 1), "int32"), XpnnTypeError, r"ds has non-floating dtype"),
    "other backend": (
        lambda n: _foreign(n.backend, (5, 4, 1)),
        XpnnTypeError,
        r"ds is a (numpy|array_api_strict) array",
    ),
}
RNN_D_METHODS = {
    "loss": lambda n, x, d: n.loss(x, d),
    "loss_and_grad": lambda n, x, d: n.loss_and_grad(x, d),
    "backward": lambda n, x, d: n.backward(n.forward(x)[1], d),
}


@pytest.mark.parametrize("method", RNN_D_METHODS)
@pytest.mark.parametrize("case", RNN_BAD_DS)
def test_rnn_rejects_bad_targets(backend, device, case, method):
    net = _rnn(backend, device)
    make, kind, match = RNN_BAD_DS[case]
    with _raises(kind, match):
        RNN_D_METHODS[method](net, net.asarray(np.ones((5, 4, 2))), make(net))


@pytest.mark.parametrize(
    ("ds_shape", "match"),
    [
        ((5, 4, 1), r"ds must have shape \(4, 1\), got \(5, 4, 1\)"),
        ((3, 1), r"ds must have shape \(4, 1\), got \(3, 1\)"),
    ],
)
def test_many_to_one_targets(backend, device, ds_shape, match):
    net = _rnn(backend, device, many_to_one=True, output="identity")
    xs = net.asarray(np.ones((5, 4, 2)))
    with _raises(XpnnValueError, match):
        net.loss_and_grad(xs, net.asarray(np.ones(ds_shape)))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([[0, 1, 2, 3]] * 5, r"ds holds class labels outside 0 \.\. 2"),
        ([[0, 1, -1, 0]] * 5, r"ds holds class labels outside 0 \.\. 2"),
        ([[0, 1, 2]] * 5, r"ds must have shape \(5, 4\), got \(5, 3\)"),
    ],
)
def test_rnn_class_labels(backend, device, labels, match):
    net = xpnn.RNN(2, 3, 3, output="softmax", loss="cross_entropy", backend=backend, device=device)
    with _raises(XpnnValueError, match):
        net.loss(net.asarray(np.ones((5, 4, 2))), _labels(net, labels))


@pytest.mark.parametrize(
    ("make_h0", "kind", "match"),
    [
        (
            lambda n: n.asarray(np.ones((3, 3))),
            XpnnValueError,
            r"h0 must have shape \(4, 3\), got \(3, 3\)",
        ),
        (
            lambda n: n.asarray(np.ones(3)),
            XpnnValueError,
            r"h0 must have shape \(4, 3\), got \(3,\)",
        ),
        (lambda n: _filled(n, (4, 3), np.nan), XpnnValueError, r"h0 contains NaN or infinity"),
        (lambda n: _foreign(n.backend, (4, 3)), XpnnTypeError, r"h0 is a \w+ array but the model"),
    ],
)
def test_rnn_rejects_bad_h0(backend, device, make_h0, kind, match):
    net = _rnn(backend, device)
    with _raises(kind, match):
        net.forward(net.asarray(np.ones((5, 4, 2))), make_h0(net))


@pytest.mark.parametrize("truncate", [0, -1, 1.5, True, "2"])
@pytest.mark.parametrize("method", ["backward", "loss_and_grad"])
def test_truncate_must_be_a_positive_int(backend, device, truncate, method):
    net = _rnn(backend, device)
    xs, ds = net.asarray(np.ones((5, 4, 2))), net.asarray(np.ones((5, 4, 1)))
    with _raises(XpnnValueError, rf"truncate must be an integer .* got {truncate!r}"):
        if method == "backward":
            net.backward(net.forward(xs)[1], ds, truncate=truncate)
        else:
            net.loss_and_grad(xs, ds, truncate=truncate)


def test_rnn_backward_rejects_foreign_cache(backend, device):
    net = _rnn(backend, device)
    xs, ds = net.asarray(np.ones((5, 4, 2))), net.asarray(np.ones((5, 4, 1)))
    wider = xpnn.RNN(2, 4, 1, backend=backend, device=device).forward(xs)[1]
    with _raises(XpnnValueError, r"cache\.params\['W_in'\] must have shape \(2, 3\), got \(2, 4\)"):
        net.backward(wider, ds)
    with _raises(XpnnValueError, r"cache must be the RNNCache returned by forward, got tuple"):
        net.backward((xs, ds), ds)


# -- optimisers -----------------------------------------------------------------------

BAD_RATES = [0, 0.0, -0.1, NAN, INF, -INF, "0.1", True, None]


@pytest.mark.parametrize("lr", BAD_RATES)
@pytest.mark.parametrize("cls", [SGD, Momentum])
def test_learning_rate_must_be_positive_and_finite(cls, lr):
    with _raises(XpnnValueError, rf"lr must be positive and finite, got {lr!r}"):
        cls(lr)


@pytest.mark.parametrize("momentum", [0, 1, 1.5, -0.5, NAN, "0.9"])
def test_momentum_in_the_open_unit_interval(momentum):
    with _raises(XpnnValueError, rf"momentum must be in \(0, 1\.0\), got {momentum!r}"):
        Momentum(0.1, momentum=momentum)


@pytest.mark.parametrize("opt", [SGD(0.1), Momentum(0.1), Adam()])
@pytest.mark.parametrize("change", ["missing", "extra", "renamed"])
def test_update_rejects_mismatched_keys(backend, device, opt, change):
    net = _mlp(backend, device)
    grads = dict(net.params)
    if change == "missing":
        del grads["b2"]
    elif change == "extra":
        grads["W3"] = grads["W2"]
    else:
        grads["w1"] = grads.pop("W1")
    with _raises(XpnnValueError, r"grads must have the keys of params \['W1', 'W2', 'b1', 'b2'\]"):
        opt.update(net.params, grads, opt.init(net.params))


# -- datasets -------------------------------------------------------------------------

DATASET_BAD = [
    ("linear n 0", lambda: datasets.linear(0), r"n must be an integer .* got 0"),
    ("linear n -1", lambda: datasets.linear(-1), r"n must be an integer .* got -1"),
    ("linear n 1.5", lambda: datasets.linear(1.5), r"n must be an integer .* got 1\.5"),
    ("linear n True", lambda: datasets.linear(True), r"n must be an integer .* got True"),
    (
        "linear low >= high",
        lambda: datasets.linear(3, low=1.0, high=0.0),
        r"need finite low < high, got low=1\.0, high=0\.0",
    ),
    (
        "linear low == high",
        lambda: datasets.linear(3, low=1.0, high=1.0),
        r"need finite low < high",
    ),
    ("linear low NaN", lambda: datasets.linear(3, low=NAN), r"need finite low < high, got low=nan"),
    (
        "linear high inf",
        lambda: datasets.linear(3, high=INF),
        r"need finite low < high, .*high=inf",
    ),
    ("linear low str", lambda: datasets.linear(3, low="0"), r"need finite low < high, got low='0'"),
    (
        "linear seed -1",
        lambda: datasets.linear(3, seed=-1),
        r"seed must be a non-negative integer, got -1",
    ),
    (
        "bits 1",
        lambda: datasets.binary_addition(4, bits=1),
        r"bits must be an integer from 2 to 62, got 1",
    ),
    (
        "bits 0",
        lambda: datasets.binary_addition(4, bits=0),
        r"bits must be an integer from 2 to 62, got 0",
    ),
    (
        "bits too large",
        lambda: datasets.binary_addition(4, bits=63),
        r"bits must be an integer from 2 to 62, got 63",
    ),
    (
        "bits 99",
        lambda: datasets.binary_addition(4, bits=99),
        r"bits must be an integer from 2 to 62, got 99",
    ),
    (
        "bits 8.0",
        lambda: datasets.binary_addition(4, bits=8.0),
        r"bits must be an integer .* got 8\.0",
    ),
    (
        "addition n 0",
        lambda: datasets.binary_addition(0),
        r"n must be an integer .* got 0",
    ),
    (
        "addition seed str",
        lambda: datasets.binary_addition(2, seed="x"),
        r"seed must be a non-negative integer, got 'x'",
    ),
    (
        "all pairs bits too large",
        lambda: datasets.all_binary_additions(TOP_BITS + 1),
        f"bits must be an integer from 2 to {TOP_BITS}, got {TOP_BITS + 1}",
    ),
    (
        "all pairs bits 1",
        lambda: datasets.all_binary_additions(1),
        f"bits must be an integer from 2 to {TOP_BITS}, got 1",
    ),
    (
        "sine maxlen 0",
        lambda: datasets.sine_windows(0),
        r"maxlen must be an integer .* got 0",
    ),
    (
        "sine maxlen 2.5",
        lambda: datasets.sine_windows(2.5),
        r"maxlen must be an integer .* got 2\.5",
    ),
    (
        "sine maxlen too long",
        lambda: datasets.sine_windows(450),
        r"maxlen must be below n_points - n_test = 400 .* got maxlen=450",
    ),
    (
        "sine maxlen > points",
        lambda: datasets.sine_windows(600),
        r"maxlen must be below n_points - n_test = 400",
    ),
    (
        "sine n_test 0",
        lambda: datasets.sine_windows(2, n_test=0),
        r"n_test must be an integer .* got 0",
    ),
    (
        "sine n_test 1.5",
        lambda: datasets.sine_windows(2, n_test=1.5),
        r"n_test must be an integer .* got 1\.5",
    ),
    (
        "sine n_points 0",
        lambda: datasets.sine_windows(2, n_points=0),
        r"n_points must be an integer .* got 0",
    ),
    (
        "continuation n 0",
        lambda: datasets.sine_continuation(0.0, 0.1, 0),
        r"n must be an integer .* got 0",
    ),
    (
        "stream batch 0",
        lambda: datasets.SampleStream(np.ones((4, 2)), np.ones((4, 1)), 0),
        r"batch_size must be an integer .* got 0",
    ),
    (
        "stream lengths",
        lambda: datasets.SampleStream(np.ones((4, 2)), np.ones((3, 1)), 2),
        r"x has 4 samples but d has 3",
    ),
    (
        "stream axis",
        lambda: datasets.SampleStream(np.ones((4, 2)), np.ones((4, 1)), 2, batch_axis=3),
        r"batch_axis must be an axis of a 2-D array, got 3",
    ),
    (
        "stream target axis",
        lambda: datasets.SampleStream(np.ones((4, 2)), np.ones(4), 2, target_axis=1),
        r"target_axis must be an axis of a 1-D array, got 1",
    ),
    (
        "stream seed",
        lambda: datasets.SampleStream(np.ones((4, 2)), np.ones((4, 1)), 2, seed=-3),
        r"seed must be a non-negative integer, got -3",
    ),
    (
        "addition stream bits 1",
        lambda: datasets.BinaryAdditionStream(2, bits=1),
        r"bits must be an integer from 2 to 62, got 1",
    ),
    (
        "addition stream batch 0",
        lambda: datasets.BinaryAdditionStream(0),
        r"batch_size must be an integer .* got 0",
    ),
    (
        "addition stream seed",
        lambda: datasets.BinaryAdditionStream(2, seed=-1),
        r"seed must be a non-negative integer",
    ),
]


@pytest.mark.parametrize(("case", "call", "match"), DATASET_BAD, ids=[c[0] for c in DATASET_BAD])
def test_datasets_reject(case, call, match):
    with _raises(XpnnValueError, match):
        call()


# -- train() ----------------------------------------------------------------------------


def _stream(x_width=2, n=8, fill=1.0):
    return datasets.SampleStream(np.full((n, x_width), fill), np.eye(2)[np.arange(n) % 2], 2)


TRAIN_BAD = [
    ("iters 0", {"iters": 0}, XpnnValueError, r"iters must be an integer .* got 0"),
    ("iters 2.5", {"iters": 2.5}, XpnnValueError, r"iters must be an integer .* got 2\.5"),
    (
        "log_every 0",
        {"log_every": 0},
        XpnnValueError,
        r"log_every must be an integer .* got 0",
    ),
    (
        "start -1",
        {"start": -1},
        XpnnValueError,
        r"start must be an integer from 0 to iters=3, got -1",
    ),
    (
        "start past iters",
        {"start": 4},
        XpnnValueError,
        r"start must be an integer from 0 to iters=3, got 4",
    ),
    (
        "start str",
        {"start": "0"},
        XpnnValueError,
        r"start must be an integer from 0 to iters=3, got '0'",
    ),
    (
        "truncate 0",
        {"truncate": 0},
        XpnnValueError,
        r"truncate must be an integer .* got 0",
    ),
    ("truncate on an MLP", {"truncate": 2}, XpnnValueError, r"truncate applies to an RNN only"),
    ("clip 0", {"clip": 0}, XpnnValueError, r"clip must be a positive finite number, got 0"),
    (
        "clip -1",
        {"clip": -1.0},
        XpnnValueError,
        r"clip must be a positive finite number, got -1\.0",
    ),
    ("clip NaN", {"clip": NAN}, XpnnValueError, r"clip must be a positive finite number, got nan"),
    (
        "clip True",
        {"clip": True},
        XpnnValueError,
        r"clip must be a positive finite number, got True",
    ),
    (
        "model None",
        {"model": None},
        XpnnTypeError,
        r"model must be an xpnn MLP or RNN, got NoneType",
    ),
    (
        "optimizer None",
        {"optimizer": None},
        XpnnTypeError,
        r"optimizer must be an xpnn optimiser \(SGD, Momentum, AdaGrad, RMSProp, Adam\), got "
        r"NoneType",
    ),
    (
        "stream tuple",
        {"stream": (np.ones((4, 2)), np.ones((4, 2)))},
        XpnnTypeError,
        r"stream must be an xpnn\.datasets stream, got tuple",
    ),
    (
        "data width",
        {"stream": _stream(x_width=3)},
        XpnnValueError,
        r"x must have shape \(any, 2\), got \(2, 3\)",
    ),
    ("data NaN", {"stream": _stream(fill=np.nan)}, XpnnValueError, r"x contains NaN or infinity"),
    (
        "batch too large",
        {"stream": datasets.SampleStream(np.ones((8, 2)), np.ones((8, 2)), 10**21)},
        XpnnValueError,
        r"the stream cannot draw batches of batch_size=10{21} .*; use a smaller batch_size",
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "kind", "match"), TRAIN_BAD, ids=[c[0] for c in TRAIN_BAD]
)
def test_train_rejects(backend, device, case, changes, kind, match):
    net = _mlp(backend, device)
    before = {k: xpnn.to_numpy(v) for k, v in net.params.items()}
    args = {"model": net, "optimizer": SGD(0.1), "stream": _stream(), "iters": 3} | changes
    with _raises(kind, match):
        train(args.pop("model"), args.pop("optimizer"), args.pop("stream"), **args)
    for key, value in net.params.items():  # nothing trained
        np.testing.assert_array_equal(xpnn.to_numpy(value), before[key])


def test_train_rejects_a_stream_with_the_wrong_batch_axis(backend, device):
    net = _rnn(backend, device)
    stream = datasets.SampleStream(np.ones((8, 5, 2)), np.ones((8, 5, 1)), 2)  # batch axis 0
    with _raises(XpnnValueError, r"stream has its batch on axis 0 but RNN takes batches on axis 1"):
        train(net, SGD(0.1), stream, iters=2)


def test_train_checks_the_stream_against_the_model(backend, device):
    net = _rnn(backend, device, hidden="tanh")
    stream = datasets.BinaryAdditionStream(2, bits=4)
    net3 = xpnn.RNN(3, 3, 1, backend=backend, device=device)
    with _raises(XpnnValueError, r"xs must have shape \(any, any, 3\), got \(4, 2, 2\)"):
        train(net3, SGD(0.1), stream, iters=2)
    assert train(net, SGD(0.1), stream, iters=2).step == 2


# -- gradient_check -------------------------------------------------------------------


def test_gradient_check_needs_float64(backend, device):
    net = xpnn.MLP([2, 3, 2], dtype="float32", backend=backend, device=device)
    x = net.asarray(np.ones((2, 2)))
    with _raises(XpnnTypeError, r"gradient checks need a float64 model, got \S*float32"):
        xpnn.gradient_check(net, x, net.asarray(np.eye(2)))


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        ({"truncate": 2}, XpnnValueError, r"truncate applies to an RNN only"),
        ({"h": 0}, XpnnValueError, r"h must be a finite-difference step in \(0, 1\), got 0"),
        ({"h": -1e-4}, XpnnValueError, r"h must be a finite-difference step .* got -0\.0001"),
        ({"h": NAN}, XpnnValueError, r"h must be a finite-difference step .* got nan"),
        ({"model": None}, XpnnTypeError, r"model must be an xpnn MLP or RNN, got NoneType"),
        ({"x": "bad"}, XpnnTypeError, r"x must be an array of the model's backend"),
        ({"width": 3}, XpnnValueError, r"x must have shape \(any, 2\), got \(2, 3\)"),
    ],
)
def test_gradient_check_rejects(backend, device, kwargs, kind, match):
    net = _mlp(backend, device)
    args = {"model": net, "width": 2, "d": net.asarray(np.eye(2))} | kwargs
    args.setdefault("x", net.asarray(np.ones((2, args.pop("width")))))
    with _raises(kind, match):
        xpnn.gradient_check(args.pop("model"), args.pop("x"), args.pop("d"), **args)


def test_gradient_check_rnn_truncate_zero(backend, device):
    net = _rnn(backend, device)
    xs, ds = net.asarray(np.ones((3, 2, 2))), net.asarray(np.ones((3, 2, 1)))
    with _raises(XpnnValueError, r"truncate must be an integer .* got 0"):
        xpnn.gradient_check(net, xs, ds, truncate=0)


# -- the errors keep working as built-in exceptions -----------------------------------


def test_errors_are_builtin_kinds_too(backend, device):
    net = _mlp(backend, device)
    with pytest.raises(ValueError, match="x must have shape"):
        net.forward(net.asarray(np.ones((4, 3))))
    with pytest.raises(TypeError, match="non-floating dtype"):
        net.forward(_typed(net, (4, 2), "int32"))


@pytest.mark.parametrize(
    "call",
    [
        lambda v: datasets.binary_addition(4, bits=v),
        lambda v: datasets.binary_addition(v),
        lambda v: datasets.adding_problem(4, steps=v),
        lambda v: datasets.BinaryAdditionStream(v),
    ],
    ids=["bits", "n", "steps", "batch_size"],
)
def test_datasets_echo_a_long_argument_short(call):
    with pytest.raises(XpnnValueError) as info:
        call("x" * 5000)
    assert "xxx" in str(info.value) and len(str(info.value)) < 200
