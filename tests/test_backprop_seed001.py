"""Seed 001 (the backpropagation notebook) reproduced to the notebook's printed digits.

The expected numbers are copied from the notebook's printed output in
``shared/seeds/001_db6f183183162d05.txt`` (8 significant digits), an independent source.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.course import notebooks

pytestmark = pytest.mark.oracle

PRINTED = {
    "u1": [[1.2, 2.5, 3.8]],
    "z1": [[1.2, 2.5, 3.8]],
    "u2": [[1.86, 4.21]],
    "y": [[0.08706577, 0.91293423]],
    "dE/du2": [[0.08706577, -0.08706577]],
    "dE/du1": [[-0.02611973, -0.02611973, -0.02611973]],
    "grad_W1": [[-0.02611973, -0.02611973, -0.02611973], [-0.13059866, -0.13059866, -0.13059866]],
    "grad_W2": [[0.10447893, -0.10447893], [0.21766443, -0.21766443], [0.33084994, -0.33084994]],
    "grad_b1": [-0.02611973, -0.02611973, -0.02611973],
    "grad_b2": [0.08706577, -0.08706577],
    "new_W1": [[0.1002612, 0.3002612, 0.5002612], [0.20130599, 0.40130599, 0.60130599]],
    "new_W2": [[0.09895521, 0.40104479], [0.19782336, 0.50217664], [0.2966915, 0.6033085]],
    "new_b1": [0.1002612, 0.2002612, 0.3002612],
    "new_b2": [0.09912934, 0.20087066],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_printed_value_to_8_digits(backend, device, dtype):
    values = notebooks.backprop_step(backend=backend, device=device, dtype=dtype, echo=None)
    for key, printed in PRINTED.items():
        # numpy prints 8 decimals: the value rounds to the printed one (float32: 1e-6 apart)
        atol = 5e-9 if dtype == "float64" else 1e-6
        np.testing.assert_allclose(values[key], printed, rtol=0, atol=atol, err_msg=key)


def test_printed_with_the_notebook_labels(capsys):
    notebooks.backprop_step()
    out = capsys.readouterr().out
    for label in (
        "総入力1",
        "中間層出力1",
        "総入力2",
        "出力1",
        "偏微分_dE/du1",
        "偏微分_重み1",
        "更新後パラメータ",
    ):
        assert label in out
    assert "[[0.08706577 0.91293423]]" in out
    assert "[[-0.02611973 -0.02611973 -0.02611973]]" in out


def test_the_public_api_gives_the_same_step(backend, device):
    net = xpnn.MLP.from_params(
        notebooks.BACKPROP_PARAMS,
        hidden="relu",
        output="softmax",
        loss="cross_entropy",
        backend=backend,
        device=device,
    )
    x, d = net.asarray([[1.0, 5.0]]), net.asarray([[0.0, 1.0]])
    _, grads = net.loss_and_grad(x, d)
    net.params, _state = xpnn.SGD(lr=0.01).update(net.params, grads, {})
    np.testing.assert_allclose(xpnn.to_numpy(net.params["W2"]), PRINTED["new_W2"], atol=5e-9)
