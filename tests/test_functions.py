"""Activations, derivatives, softmax and losses against closed forms written with NumPy.
(Unknown names and cross-entropy without probabilities: tests/test_errors.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from array_api_extra.testing import assert_close

import xpnn
from xpnn.backends import default_device
from xpnn.nn import functions as F
from xpnn.nn import losses as L

pytestmark = pytest.mark.oracle

U = np.array([[-3.0, -0.5, 0.0, 0.25, 2.0], [40.0, -40.0, 1e-3, -1e-3, 7.5]])

CLOSED_FORMS = {
    "sigmoid": lambda u: 1.0 / (1.0 + np.exp(-u)),
    "relu": lambda u: np.maximum(0.0, u),
    "tanh": np.tanh,
    "identity": lambda u: u,
    "step_function": lambda u: (u > 0).astype(u.dtype),
    "d_sigmoid": lambda u: np.exp(-u) / (1.0 + np.exp(-u)) ** 2,
    "d_relu": lambda u: (u > 0).astype(u.dtype),
    "d_tanh": lambda u: 1.0 / np.cosh(u) ** 2,
    "d_identity": np.ones_like,
}


@pytest.fixture
def xp(backend, device):
    xp = xpnn.get_namespace(backend)
    return xp, device if device is not None else default_device(xp)


def _asarray(xp_dev, a, dtype="float64"):
    xp, dev = xp_dev
    return xp.asarray(a, dtype=getattr(xp, dtype), device=dev)


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
def test_activation_matches_closed_form(xp, name):
    u = _asarray(xp, U)
    got = getattr(F, name)(u)
    assert_close(got, _asarray(xp, CLOSED_FORMS[name](U)), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["step_function", "d_relu"])
def test_step_and_d_relu_return_the_floating_dtype(xp, name):
    # course mistake 6: these returned integer arrays
    for dtype in ("float32", "float64"):
        u = _asarray(xp, U, dtype)
        assert getattr(F, name)(u).dtype == u.dtype


@pytest.mark.parametrize("name", ["sigmoid", "relu", "tanh", "identity"])
def test_layer_derivative_is_the_derivative_at_the_pre_activation(xp, name):
    act = F.get_activation(name)
    u = _asarray(xp, U)
    z = act.forward(u)
    assert_close(act.derivative(u, z, xp[0]), getattr(F, f"d_{name}")(u), rtol=1e-12, atol=1e-15)


def test_softmax_rows_on_large_inputs_and_any_rank(xp):
    big = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    e = np.exp(big - big.max(axis=-1, keepdims=True))
    expected = e / e.sum(axis=-1, keepdims=True)
    assert_close(F.softmax(_asarray(xp, big)), _asarray(xp, expected), rtol=1e-12, atol=0)
    # 3-D: each last-axis row on its own (the course normalised over the whole array)
    cube = np.stack([big, big + 5.0])
    assert_close(
        F.softmax(_asarray(xp, cube)),
        _asarray(xp, np.stack([expected, expected])),
        rtol=1e-12,
        atol=0,
    )


def test_sigmoid_does_not_overflow(xp):
    u = _asarray(xp, [[-1000.0, 1000.0]])
    assert_close(F.sigmoid(u), _asarray(xp, [[0.0, 1.0]]), rtol=0, atol=0)


Y = np.array([[0.2, 0.7, 0.1], [0.05, 0.05, 0.9]])
D = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_squared_error_and_its_gradient_agree(xp):
    d, y = _asarray(xp, D), _asarray(xp, Y)
    # 0.5 * sum((y - d)**2) / B, and (y - d) / B: the same normalisation (course mistake 5)
    assert_close(
        L.mean_squared_error(d, y), _asarray(xp, 0.5 * ((Y - D) ** 2).sum() / 2), rtol=1e-14
    )
    assert_close(L.d_mean_squared_error(d, y), _asarray(xp, (Y - D) / 2), rtol=1e-14)


def test_cross_entropy_one_hot_and_labels(xp):
    expected = -np.log(np.array([0.7, 0.9]) + 1e-7).sum() / 2
    y = _asarray(xp, Y)
    assert_close(L.cross_entropy_error(_asarray(xp, D), y), _asarray(xp, expected), rtol=1e-14)
    labels = xp[0].asarray([1, 2], device=xp[1])
    assert_close(L.cross_entropy_error(labels, y), _asarray(xp, expected), rtol=1e-14)


def test_softmax_with_loss_is_exact_and_finite(xp):
    u = np.array([[1.0, 2.0, 3.0], [500.0, -500.0, 0.0]])
    log_softmax = u - u.max(axis=-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(axis=-1, keepdims=True))
    expected = -(D * log_softmax).sum() / 2
    got = L.softmax_with_loss(_asarray(xp, D), _asarray(xp, u))
    assert_close(got, _asarray(xp, expected), rtol=1e-13)
    y = F.softmax(_asarray(xp, u))
    assert_close(L.d_softmax_with_loss(_asarray(xp, D), y), (y - _asarray(xp, D)) / 2, rtol=1e-14)


def test_sigmoid_with_loss_is_binary_cross_entropy(xp):
    u = np.array([[0.3, -2.0], [40.0, -40.0]])
    d = np.array([[1.0, 0.0], [0.0, 1.0]])
    # log sigmoid(u) = -logaddexp(0, -u), log(1 - sigmoid(u)) = -logaddexp(0, u)
    expected = (d * np.logaddexp(0, -u) + (1 - d) * np.logaddexp(0, u)).sum() / 2
    got = L.sigmoid_with_loss(_asarray(xp, d), _asarray(xp, u))
    assert_close(got, _asarray(xp, expected), rtol=1e-9)
