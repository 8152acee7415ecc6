"""Optimisers: one step against the update rule written out with NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.errors import XpnnValueError
from xpnn.optim import Momentum


def _model(backend, device):
    return xpnn.MLP([2, 2], backend=backend, device=device)


def test_sgd_step(backend, device):
    net = _model(backend, device)
    params = {"w": net.asarray([1.0, 2.0])}
    new = xpnn.SGD(lr=0.5).update(params, {"w": net.asarray([0.2, -0.4])})
    np.testing.assert_allclose(xpnn.to_numpy(new["w"]), [0.9, 2.2], rtol=1e-15)
    np.testing.assert_array_equal(xpnn.to_numpy(params["w"]), [1.0, 2.0])  # unchanged


def test_momentum_steps_and_state(backend, device):
    net = _model(backend, device)
    opt = Momentum(lr=0.1, momentum=0.9)
    p = {"w": net.asarray([1.0])}
    g = {"w": net.asarray([2.0])}
    p = opt.update(p, g)  # v = -0.2, w = 0.8
    p = opt.update(p, g)  # v = 0.9 * -0.2 - 0.2 = -0.38, w = 0.42
    np.testing.assert_allclose(xpnn.to_numpy(p["w"]), [0.42], rtol=1e-14)
    np.testing.assert_allclose(xpnn.to_numpy(opt.state_dict()["w"]), [-0.38], rtol=1e-14)
    fresh = Momentum(lr=0.1, momentum=0.9)
    fresh.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(
        xpnn.to_numpy(fresh.update(p, g)["w"]), xpnn.to_numpy(opt.update(p, g)["w"])
    )


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_learning_rate(lr):
    with pytest.raises(XpnnValueError, match="lr must be positive and finite"):
        xpnn.SGD(lr=lr)


def test_mismatched_keys():
    with pytest.raises(XpnnValueError, match="grads must have the keys"):
        xpnn.SGD(0.1).update({"a": np.zeros(1)}, {"b": np.zeros(1)})
