"""The recurrent driver (``xpnn.nn.recurrent``) and the RNN model: one gradient-check
matrix for every cell on the driver, truncated BPTT, the course's mistakes caught, the
forward against a loop written out by hand, states, shapes and the notebook's weights."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from covering import covering_cases
from sequences import random_sequences, with_random_biases

import xpnn
from xpnn.nn.losses import OutputLayer

KINDS = [("rnn", "sigmoid"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
"""The cells, the simple RNN with each hidden activation (the gated cells have their own)."""
OUTPUT_LOSS = [
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "cross_entropy"),
]
DRIVER = list(itertools.product([False, True], [False, True], [None, 2]))
"""The driver's settings: bias, many-to-one, truncate (2: two blocks of the 4 steps)."""
T, B, I, H, O = 4, 2, 2, 2, 3  # noqa: E741 - small: eager JAX runs every perturbed loss


def _data(output: str, many_to_one: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_sequences(output, many_to_one, seed, (T, B, I, O))


def _one_a_kind_on_jax(cases: list) -> list:
    """``cases`` with the first default case of each kind marked ``jax_covering``: eager
    JAX runs every perturbed loss op by op (seconds a case), and one case a cell is what
    it adds to the other backends' matrix."""
    seen, out = set(), []
    for case in cases:
        kind = case.values[0]
        default = not any(mark.name == "slow" for mark in case.marks)
        if default and kind not in seen:
            seen.add(kind)
            case = pytest.param(*case.values, marks=(*case.marks, pytest.mark.jax_covering))
        out.append(case)
    return out


@pytest.mark.parametrize(
    ("kind", "output_loss", "bias", "many_to_one", "truncate"),
    _one_a_kind_on_jax(covering_cases(KINDS, OUTPUT_LOSS, DRIVER)),
    ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_gradient_check_every_configuration(
    backend, device, kind, output_loss, bias, many_to_one, truncate
):
    """``backward`` against central differences of the loss, float64, for every cell on
    the driver: full and truncated BPTT, many-to-many and many-to-one, with and without
    biases, every output and loss."""
    (cell, hidden), (output, loss) = kind, output_loss
    net = xpnn.RNN(
        I, H, O, cell=cell, hidden=hidden, output=output, loss=loss, bias=bias,
        many_to_one=many_to_one, init="xavier", seed=1, backend=backend, device=device,
    )  # fmt: skip
    if bias:
        with_random_biases(net, seed=3)
    xs, ds = _data(output, many_to_one, seed=2)
    # h = 1e-3: the stencil's truncation error (~h**4) stays far below 1e-7, and the
    # rounding error (~eps / h) stays small beside gradients as small as 1e-5 (the gated
    # cells' W under truncation), which the default h = 1e-4 measures only to ~1e-7.
    errors = xpnn.gradient_check(net, net.asarray(xs), net.asarray(ds), truncate=truncate, h=1e-3)
    assert set(errors) == set(net.params)
    assert max(errors.values()) <= 1e-7, errors


@pytest.mark.oracle
@pytest.mark.parametrize("many_to_one", [False, True])
def test_truncate_at_or_beyond_T_is_full_bptt(backend, device, many_to_one):
    """Bit for bit: a block as long as the sequence is the whole sequence."""
    net = xpnn.RNN(
        I, H, O, hidden="tanh", output="identity", bias=True, many_to_one=many_to_one,
        init="xavier", backend=backend, device=device,
    )  # fmt: skip
    xs, ds = _data("identity", many_to_one, seed=3)
    xs, ds = net.asarray(xs), net.asarray(ds)
    _, full = net.loss_and_grad(xs, ds)
    for truncate in (T, T + 7):
        _, cut = net.loss_and_grad(xs, ds, truncate=truncate)
        for key in full:
            np.testing.assert_array_equal(xpnn.to_numpy(cut[key]), xpnn.to_numpy(full[key]))
    _, shorter = net.loss_and_grad(xs, ds, truncate=2)
    assert not np.allclose(xpnn.to_numpy(shorter["W"]), xpnn.to_numpy(full["W"]))


@pytest.mark.oracle
def test_the_forward_is_the_hand_written_loop_to_the_bit(backend, device):
    """The driver's forward through the backend's ``scan`` against the loop written out
    here: ``ux = xs @ W_in``, ``h_t = tanh(ux_t + h_{t-1} @ W)``, ``y = H @ W_out``."""
    steps, batch = 5, 3
    net = xpnn.RNN(2, 4, 1, hidden="tanh", output="identity", seed=3, backend=backend,
                   device=device)  # fmt: skip
    xp, p = net.xp, net.params
    xs = net.asarray(np.random.default_rng(1).normal(size=(steps, batch, 2)))
    ux = xs @ p["W_in"]
    hs = [xp.tanh(ux[0, ...])]
    for t in range(1, steps):
        hs.append(xp.tanh(ux[t, ...] + hs[-1] @ p["W"]))
    v = xp.reshape(xp.concat(hs, axis=0) @ p["W_out"], (steps, batch, 1))
    ys, cache = net.forward(xs)
    assert xpnn.to_numpy(ys).tobytes() == xpnn.to_numpy(v).tobytes()
    for t in range(steps):
        assert xpnn.to_numpy(cache.state_at(t)).tobytes() == xpnn.to_numpy(hs[t]).tobytes()


# -- the course's mistakes, caught by the gradient check ----------------------------------


class _CourseOutput(OutputLayer):
    """Course mistake 1: the output delta took d_sigmoid of the output y, not of v."""

    def delta(self, u, y, d, xp):
        s = 0.5 * xp.tanh(0.5 * y) + 0.5  # sigmoid(y), not sigmoid(u)
        return (y - d) / y.shape[1] * s * (1.0 - s)


def test_gradient_check_detects_the_course_output_delta(monkeypatch):
    net = xpnn.RNN(2, 16, 1)  # the notebook's network
    xs, ds = xpnn.datasets.binary_addition(4, seed=0)
    xs, ds = net.asarray(xs), net.asarray(ds)
    assert max(xpnn.gradient_check(net, xs, ds).values()) <= 1e-7
    course = dataclasses.replace(net.core, out=_CourseOutput("sigmoid", "mse"))
    monkeypatch.setattr(net, "core", course)  # the math the checked methods run
    assert xpnn.gradient_check(net, xs, ds)["W_out"] > 1e-2


def test_gradient_check_detects_the_sine_notebook_recurrence():
    """Course mistake 4: an output delta injected at every step of a many-to-one network."""
    net = xpnn.RNN(1, 5, 1, hidden="tanh", output="identity", many_to_one=True, init="xavier")
    data = xpnn.datasets.sine_windows(maxlen=5)
    xs, ds = net.asarray(data.xs_train[:, :4]), net.asarray(data.ds_train[:4])
    assert max(xpnn.gradient_check(net, xs, ds).values()) <= 1e-7
    many = xpnn.RNN.from_params(net.params, hidden="tanh", output="identity")
    _, cache = many.core.forward(many.params, xs)
    wrong = many.core.backward(cache, many.xp.stack([ds] * 5))  # delta at every step
    _, right = net.loss_and_grad(xs, ds)
    assert not np.allclose(wrong["W"], right["W"])


# -- states, shapes and weights -------------------------------------------------------------


@pytest.mark.jax_covering  # the RNN in float32 (the oracle tests run float64)
def test_shapes_and_the_state_carried_over(backend, device):
    """float32 all through; running two halves with the state carried over equals one
    run (the gated cells' carry: tests/test_cells.py)."""
    net = xpnn.RNN(I, H, O, bias=True, backend=backend, device=device, dtype="float32")
    xs = net.asarray(np.random.default_rng(0).normal(size=(T, B, I)))
    ys, cache = net.forward(xs)
    assert tuple(ys.shape) == (T, B, O) and ys.dtype == net.xp.float32
    assert tuple(cache.state_at(-1).shape) == (B, H)
    _, first = net.forward(xs[:2, ...])
    second, _ = net.forward(xs[2:, ...], h0=first.state_at(-1))
    np.testing.assert_allclose(xpnn.to_numpy(second), xpnn.to_numpy(ys[2:, ...]), rtol=1e-6)
    grads = net.backward(cache, net.asarray(np.zeros((T, B, O))))
    assert {k: tuple(g.shape) for k, g in grads.items()} == net.param_shapes
    assert all(g.dtype == net.xp.float32 for g in grads.values())
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


# -- the identity start (the IRNN, Le, Jaitly and Hinton 2015) ------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("truncate", [None, 2])
def test_gradient_check_of_the_identity_start(backend, device, truncate):
    """The IRNN (ReLU state from W = I) on the adding problem's layout: many-to-one,
    identity output, squared error, biases; full and truncated BPTT."""
    net = xpnn.RNN(
        I, H, 1, hidden="relu", output="identity", loss="mse", bias=True, many_to_one=True,
        init="identity", init_scale=0.9, weight_init_std=0.5, seed=1, backend=backend,
        device=device,
    )  # fmt: skip
    with_random_biases(net, seed=3)
    xs, ds = random_sequences("identity", True, 2, (T, B, I, 1))
    errors = xpnn.gradient_check(net, net.asarray(xs), net.asarray(ds), truncate=truncate, h=1e-3)
    assert set(errors) == set(net.params)
    assert max(errors.values()) <= 1e-7, errors


def test_the_identity_start_draws_the_notebooks_weights_and_scales_the_identity():
    """W = init_scale * I exactly; W_in and W_out are the notebook's draws (W_in, W_out,
    then W from one generator, times weight_init_std), the draw of W spent all the same so
    that the others do not depend on the start; the biases start at zero."""
    rng = np.random.default_rng(7)
    w_in, w_out = rng.standard_normal((2, 5)) * 0.001, rng.standard_normal((5, 1)) * 0.001
    net = xpnn.RNN(
        2, 5, 1, hidden="relu", output="identity", bias=True, many_to_one=True,
        init="identity", init_scale=0.5, weight_init_std=0.001, seed=7,
    )  # fmt: skip
    np.testing.assert_array_equal(net.params["W"], 0.5 * np.eye(5))
    np.testing.assert_array_equal(net.params["W_in"], w_in)
    np.testing.assert_array_equal(net.params["W_out"], w_out)
    for key in ("b", "b_out"):
        np.testing.assert_array_equal(net.params[key], np.zeros_like(net.params[key]))
    assert xpnn.RNN(2, 5, 1, hidden="relu", init="identity").init_scale == 1.0
