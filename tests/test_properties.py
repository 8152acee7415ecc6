"""Properties that hold for every size, batch and sequence length, found by hypothesis on
NumPy and on array-api-strict (the referee of the standard). Sizes stay small so the suite
stays fast; each test states its number of examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from selection import selected_backends

import xpnn
from xpnn.backends import default_device
from xpnn.nn import functions as F

PROPERTY_BACKENDS = [n for n in ("numpy", "array_api_strict") if n in selected_backends()]
pytestmark = pytest.mark.parametrize("backend", PROPERTY_BACKENDS)

# the device fixture is a plain value read from the environment: safe to share across examples
FIXTURE_OK = [HealthCheck.function_scoped_fixture]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
MODELS = settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
GRADCHECK = settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE_OK)

ACTIVATIONS = {
    "sigmoid": (F.sigmoid, F.d_sigmoid),
    "relu": (F.relu, F.d_relu),
    "tanh": (F.tanh, F.d_tanh),
    "identity": (F.identity, F.d_identity),
}
OUTPUT_LOSS = [
    ("identity", "mse"),
    ("sigmoid", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "cross_entropy"),
]


def _namespace(backend, device):
    xp = xpnn.get_namespace(backend)
    return xp, default_device(xp) if device is None else device


def _host_arrays(max_side: int, bound: float, min_dims: int = 1, max_dims: int = 3):
    return hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side),
        elements=st.floats(-bound, bound, allow_nan=False, allow_infinity=False),
    )


def _to_xp(host, xp, device):
    return xp.asarray(host, dtype=xp.float64, device=device)


def _close(a, b, *, rtol: float, atol: float = 0.0) -> None:
    np.testing.assert_allclose(xpnn.to_numpy(a), xpnn.to_numpy(b), rtol=rtol, atol=atol)


def _finite(a) -> bool:
    return bool(np.all(np.isfinite(xpnn.to_numpy(a))))


# -- functions ------------------------------------------------------------------------


@FAST
@given(host=_host_arrays(6, 1e6), name=st.sampled_from(sorted(ACTIVATIONS)))
def test_activations_and_derivatives_finite_for_bounded_inputs(backend, device, host, name):
    xp, dev = _namespace(backend, device)
    f, df = ACTIVATIONS[name]
    u = _to_xp(host, xp, dev)
    z = f(u, xp=xp)
    assert z.shape == u.shape
    assert z.dtype == u.dtype
    assert _finite(z)
    assert _finite(df(u, xp=xp))
    assert _finite(F.ACTIVATIONS[name].derivative(u, z, xp))


@FAST
@given(
    host=_host_arrays(6, 8.0).filter(lambda a: bool(np.all(np.abs(a) > 1e-3))),
    name=st.sampled_from(sorted(ACTIVATIONS)),
)
def test_derivative_matches_central_difference(backend, device, host, name):
    xp, dev = _namespace(backend, device)
    f, df = ACTIVATIONS[name]
    u, h = _to_xp(host, xp, dev), 1e-5  # |u| > 1e-3 keeps relu's kink outside u +- h
    numeric = (f(u + h, xp=xp) - f(u - h, xp=xp)) / (2 * h)
    _close(df(u, xp=xp), numeric, rtol=1e-6, atol=1e-9)
    # the layer's form, which reads the activation's output, agrees with it
    _close(F.ACTIVATIONS[name].derivative(u, f(u, xp=xp), xp), numeric, rtol=1e-6, atol=1e-9)


@FAST
@given(host=_host_arrays(7, 50.0), shift=st.floats(-100.0, 100.0))
def test_softmax_rows_sum_to_one_and_ignore_a_constant(backend, device, host, shift):
    xp, dev = _namespace(backend, device)
    x = _to_xp(host, xp, dev)
    y = F.softmax(x, xp=xp)
    assert bool(xp.all(y >= 0.0))
    _close(xp.sum(y, axis=-1), np.ones(host.shape[:-1]), rtol=1e-12)
    _close(F.softmax(x + shift, xp=xp), y, rtol=1e-9, atol=1e-15)


@FAST
@given(host=_host_arrays(7, 1e307))
def test_softmax_finite_for_huge_inputs(backend, device, host):
    xp, dev = _namespace(backend, device)
    y = F.softmax(_to_xp(host, xp, dev), xp=xp)
    assert _finite(y)
    _close(xp.sum(y, axis=-1), np.ones(host.shape[:-1]), rtol=1e-12)


# -- models ---------------------------------------------------------------------------


def _targets(output: str, loss: str, shape: tuple[int, ...], rng: np.random.Generator):
    if output == "softmax":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    if output == "sigmoid":
        return rng.uniform(0.0, 1.0, size=shape)
    return rng.normal(size=shape)


@st.composite
def mlp_configs(draw, max_width: int = 5, max_batch: int = 6):
    depth = draw(st.integers(1, 3))
    output, loss = draw(st.sampled_from(OUTPUT_LOSS))
    sizes = [draw(st.integers(1, max_width)) for _ in range(depth + 1)]
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    return {
        "sizes": sizes,
        "hidden": draw(st.sampled_from(sorted(F.ACTIVATIONS))),
        "output": output,
        "loss": loss,
        "init": draw(st.sampled_from(["std", "xavier", "he"])),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "batch": draw(st.integers(1, max_batch)),
    }


def _mlp_case(config, backend, device, bound=10.0):
    config = dict(config)
    batch = config.pop("batch")
    sizes = config.pop("sizes")
    net = xpnn.MLP(sizes, **config, weight_init_std=0.5, backend=backend, device=device)
    rng = np.random.default_rng(config["seed"])
    x = net.asarray(rng.uniform(-bound, bound, size=(batch, sizes[0])))
    d = net.asarray(_targets(config["output"], config["loss"], (batch, sizes[-1]), rng))
    return net, x, d


@MODELS
@given(config=mlp_configs())
def test_mlp_outputs_finite_and_grads_shaped_like_params(backend, device, config):
    net, x, d = _mlp_case(config, backend, device)
    y, cache = net.forward(x)
    assert tuple(y.shape) == (x.shape[0], config["sizes"][-1])
    assert _finite(y)
    grads = net.backward(cache, d)
    assert sorted(grads) == sorted(net.params)
    for key, g in grads.items():
        assert tuple(g.shape) == tuple(net.params[key].shape), key
        assert g.dtype == net.params[key].dtype
        assert _finite(g)
    loss, grads2 = net.loss_and_grad(x, d)
    assert loss.shape == ()
    _close(loss, net.loss(x, d), rtol=1e-12)
    for key in grads:
        _close(grads2[key], grads[key], rtol=1e-12, atol=1e-15)


@st.composite
def rnn_configs(draw, max_size: int = 4, max_steps: int = 6, max_batch: int = 4):
    output, loss = draw(st.sampled_from(OUTPUT_LOSS))
    steps = draw(st.integers(1, max_steps))
    out_size = draw(st.integers(2 if output == "softmax" else 1, max_size))
    return {
        "input_size": draw(st.integers(1, max_size)),
        "hidden_size": draw(st.integers(1, max_size)),
        "output_size": out_size,
        "hidden": draw(st.sampled_from(["sigmoid", "tanh", "relu"])),
        "output": output,
        "loss": loss,
        "bias": draw(st.booleans()),
        "many_to_one": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "steps": steps,
        "batch": draw(st.integers(1, max_batch)),
        "truncate": draw(st.none() | st.integers(1, steps + 1)),
    }


def _rnn_case(config, backend, device, bound=3.0):
    config = dict(config)
    steps, batch, truncate = config.pop("steps"), config.pop("batch"), config.pop("truncate")
    net = xpnn.RNN(**config, init="xavier", weight_init_std=1.0, backend=backend, device=device)
    rng = np.random.default_rng(config["seed"])
    xs = net.asarray(rng.uniform(-bound, bound, size=(steps, batch, net.input_size)))
    lead = (batch,) if net.many_to_one else (steps, batch)
    ds = net.asarray(_targets(net.output, net.loss_name, (*lead, net.output_size), rng))
    return net, xs, ds, truncate


@MODELS
@given(config=rnn_configs())
def test_rnn_outputs_finite_and_grads_shaped_like_params(backend, device, config):
    net, xs, ds, truncate = _rnn_case(config, backend, device)
    ys, cache = net.forward(xs)
    assert tuple(ys.shape) == tuple(ds.shape)
    assert _finite(ys)
    grads = net.backward(cache, ds, truncate=truncate)
    assert sorted(grads) == sorted(net.params)
    for key, g in grads.items():
        assert tuple(g.shape) == tuple(net.params[key].shape), key
        assert _finite(g)
    loss, grads2 = net.loss_and_grad(xs, ds, truncate=truncate)
    assert loss.shape == ()
    _close(loss, net.loss(xs, ds), rtol=1e-12)
    for key in grads:
        _close(grads2[key], grads[key], rtol=1e-12, atol=1e-15)


# -- gradient checks ------------------------------------------------------------------


@GRADCHECK
@given(config=mlp_configs(max_width=3, max_batch=3))
def test_mlp_gradient_check(backend, device, config):
    if config["hidden"] == "relu":  # a kink inside the stencil is not a gradient error
        config = {**config, "hidden": "tanh"}
    net, x, d = _mlp_case(config, backend, device, bound=2.0)
    errors = xpnn.gradient_check(net, x, d)
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-6, errors


@GRADCHECK
@given(config=rnn_configs(max_size=3, max_steps=4, max_batch=2))
def test_rnn_gradient_check(backend, device, config):
    if config["hidden"] == "relu":
        config = {**config, "hidden": "sigmoid"}
    net, xs, ds, truncate = _rnn_case(config, backend, device, bound=1.0)
    errors = xpnn.gradient_check(net, xs, ds, truncate=truncate)
    assert set(errors) == set(net.params)
    assert max(errors.values()) < 1e-6, errors
