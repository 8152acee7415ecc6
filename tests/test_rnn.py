"""The RNN: gradient checks of every configuration, truncated BPTT, the public API."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from covering import covering_cases
from sequences import random_sequences

import xpnn

HIDDEN = ["sigmoid", "tanh", "relu"]
OUTPUT_LOSS = [
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "cross_entropy"),
]
T, B, I, H, O = 5, 3, 2, 4, 3  # noqa: E741 - the RNN's sizes, as in its docstring


def _data(output: str, many_to_one: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_sequences(output, many_to_one, seed, (T, B, I, O))


@pytest.mark.parametrize(
    ("hidden", "output_loss", "bias", "many_to_one", "truncate"),
    covering_cases(
        HIDDEN, OUTPUT_LOSS, list(itertools.product([False, True], [False, True], [None, 2]))
    ),
)
def test_gradient_check_every_configuration(
    backend, device, hidden, output_loss, bias, many_to_one, truncate
):
    output, loss = output_loss
    net = xpnn.RNN(
        I,
        H,
        O,
        hidden=hidden,
        output=output,
        loss=loss,
        bias=bias,
        many_to_one=many_to_one,
        init="xavier",
        seed=1,
        backend=backend,
        device=device,
    )
    xs, ds = _data(output, many_to_one, seed=2)
    errors = xpnn.gradient_check(net, net.asarray(xs), net.asarray(ds), truncate=truncate)
    assert set(errors) == set(net.params)
    assert max(errors.values()) <= 1e-7, errors


@pytest.mark.parametrize("many_to_one", [False, True])
def test_truncate_at_or_beyond_T_is_full_bptt(backend, device, many_to_one):
    net = xpnn.RNN(
        I,
        H,
        O,
        hidden="tanh",
        output="identity",
        bias=True,
        many_to_one=many_to_one,
        init="xavier",
        backend=backend,
        device=device,
    )
    xs, ds = _data("identity", many_to_one, seed=3)
    xs, ds = net.asarray(xs), net.asarray(ds)
    _, full = net.loss_and_grad(xs, ds)
    for truncate in (T, T + 7):
        _, cut = net.loss_and_grad(xs, ds, truncate=truncate)
        for key in full:
            np.testing.assert_array_equal(xpnn.to_numpy(cut[key]), xpnn.to_numpy(full[key]))
    _, shorter = net.loss_and_grad(xs, ds, truncate=2)
    assert not np.allclose(xpnn.to_numpy(shorter["W"]), xpnn.to_numpy(full["W"]))


def test_gradient_check_detects_the_course_output_delta(monkeypatch):
    """Course mistake 1: the output delta took d_sigmoid of the output y, not of v."""
    from xpnn.nn import losses

    net = xpnn.RNN(2, 16, 1)  # the notebook's network
    xs, ds = xpnn.datasets.binary_addition(4, seed=0)
    xs, ds = net.asarray(xs), net.asarray(ds)
    assert max(xpnn.gradient_check(net, xs, ds).values()) <= 1e-7

    class CourseOutput(losses.OutputLayer):
        def delta(self, u, y, d, xp):
            s = 0.5 * xp.tanh(0.5 * y) + 0.5  # sigmoid(y), not sigmoid(u)
            return (y - d) / y.shape[1] * s * (1.0 - s)

    monkeypatch.setattr(net, "_out", CourseOutput("sigmoid", "mse"))
    assert xpnn.gradient_check(net, xs, ds)["W_out"] > 1e-2


def test_gradient_check_detects_the_sine_notebook_recurrence(monkeypatch):
    """Course mistake 4: an output delta injected at every step of a many-to-one network."""
    net = xpnn.RNN(1, 5, 1, hidden="tanh", output="identity", many_to_one=True, init="xavier")
    data = xpnn.datasets.sine_windows(maxlen=5)
    xs, ds = net.asarray(data.xs_train[:, :4]), net.asarray(data.ds_train[:4])
    assert max(xpnn.gradient_check(net, xs, ds).values()) <= 1e-7
    many = xpnn.RNN.from_params(net.params, hidden="tanh", output="identity")
    _, cache = many.forward_unchecked(xs, many.params)
    wrong = many.backward_unchecked(cache, many.xp.stack([ds] * 5))  # delta at every step
    _, right = net.loss_and_grad(xs, ds)
    assert not np.allclose(xpnn.to_numpy(wrong["W"]), xpnn.to_numpy(right["W"]))


def test_shapes_final_state_and_initial_state(backend, device):
    net = xpnn.RNN(I, H, O, bias=True, backend=backend, device=device, dtype="float32")
    xs = net.asarray(np.ones((T, B, I)))
    ys, cache = net.forward(xs)
    assert tuple(ys.shape) == (T, B, O) and ys.dtype == net.xp.float32
    assert tuple(cache.states[-1].shape) == (B, H)
    # running the two halves with the state carried over equals one run
    _, c1 = net.forward(xs[:2, ...])
    second, _ = net.forward(xs[2:, ...], h0=c1.states[-1])
    np.testing.assert_allclose(xpnn.to_numpy(second), xpnn.to_numpy(ys[2:, ...]), rtol=1e-6)
    grads = net.backward(cache, net.asarray(np.zeros((T, B, O))))
    assert set(grads) == {"W_in", "W", "W_out", "b", "b_out"}
    one = xpnn.RNN(I, H, O, many_to_one=True, backend=backend, device=device)
    assert tuple(one.predict(one.asarray(np.ones((T, B, I)))).shape) == (B, O)


def test_from_params_and_same_seed_same_weights(backend, device):
    reference = xpnn.RNN(2, 16, 1, seed=5)
    net = xpnn.RNN(2, 16, 1, seed=5, backend=backend, device=device)
    for key, value in reference.params.items():
        np.testing.assert_array_equal(xpnn.to_numpy(net.params[key]), value)
    copy = xpnn.RNN.from_params(reference.params, backend=backend, device=device)
    assert (copy.input_size, copy.hidden_size, copy.output_size) == (2, 16, 1)
    assert not copy.bias


def test_notebook_draw_order_matches_the_notebook():
    """The notebook draws W_in, then W_out, then W from one generator."""
    rng = np.random.default_rng(0)
    w_in, w_out, w = (
        rng.standard_normal((2, 16)),
        rng.standard_normal((16, 1)),
        rng.standard_normal((16, 16)),
    )
    net = xpnn.RNN(2, 16, 1, seed=0)
    for key, value in {"W_in": w_in, "W_out": w_out, "W": w}.items():
        np.testing.assert_array_equal(net.params[key], value)
