"""Optimisers: pure transforms, their update rules against NumPy written out by hand and
against ``torch.optim``, and the refusal of bad hyperparameters, grads and state."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.optim import OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, RMSProp

STEPS = 50


def _params(backend, device, dtype="float64"):
    net = xpnn.MLP([3, 4, 2], seed=5, backend=backend, device=device, dtype=dtype)
    return net, dict(net.params)


def _grad_sequence(params, steps=STEPS, seed=11):
    """Host gradients for ``steps`` steps, the same for every implementation."""
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(size=tuple(p.shape)) for k, p in params.items()} for _ in range(steps)]


def _run_xpnn(net, opt, params, grads):
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, {k: net.asarray(v) for k, v in g.items()}, state)
    return {k: xpnn.to_numpy(p) for k, p in params.items()}, state


# -- the update rules, written out with NumPy -------------------------------------------


def _reference(name, hyper, params, grads):
    """The docstring formulas, step by step in float64 NumPy."""
    p = {k: np.array(xpnn.to_numpy(v), dtype=np.float64) for k, v in params.items()}
    s1 = {k: np.zeros_like(v) for k, v in p.items()}
    s2 = {k: np.zeros_like(v) for k, v in p.items()}
    lr = hyper["lr"]
    for t, g in enumerate(grads, start=1):
        for k in p:
            if name == "sgd":
                p[k] = p[k] - lr * g[k]
            elif name == "momentum":
                s1[k] = hyper["momentum"] * s1[k] - lr * g[k]
                p[k] = p[k] + s1[k]
            elif name == "adagrad":
                s1[k] = s1[k] + g[k] * g[k]
                p[k] = p[k] - lr * g[k] / (np.sqrt(s1[k]) + hyper["eps"])
            elif name == "rmsprop":
                s1[k] = hyper["decay"] * s1[k] + (1 - hyper["decay"]) * g[k] * g[k]
                p[k] = p[k] - lr * g[k] / (np.sqrt(s1[k]) + hyper["eps"])
            else:
                b1, b2 = hyper["beta1"], hyper["beta2"]
                s1[k] = b1 * s1[k] + (1 - b1) * g[k]
                s2[k] = b2 * s2[k] + (1 - b2) * g[k] * g[k]
                lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                p[k] = p[k] - lr_t * s1[k] / (np.sqrt(s2[k]) + hyper["eps"])
    return p


@pytest.mark.oracle
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_rule_matches_the_docstring(backend, device, name):
    """50 steps with the course's defaults (eps included) against the formulas in NumPy."""
    net, params = _params(backend, device)
    opt = OPTIMIZERS[name]()
    grads = _grad_sequence(params)
    got, state = _run_xpnn(net, opt, params, grads)
    want = _reference(name, opt.hyperparameters, params, grads)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-13, err_msg=k)
    assert set(state) == set(opt.state_shapes({k: p.shape for k, p in params.items()}))


def test_defaults_are_the_courses():
    """ "Deep Learning from Scratch" common/optimizer.py, with its 1e-7 as eps."""
    assert SGD().hyperparameters == {"lr": 0.01}
    assert Momentum().hyperparameters == {"lr": 0.01, "momentum": 0.9}
    assert AdaGrad().hyperparameters == {"lr": 0.01, "eps": 1e-7}
    assert RMSProp().hyperparameters == {"lr": 0.01, "decay": 0.99, "eps": 1e-7}
    assert Adam().hyperparameters == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7}


@pytest.mark.oracle
def test_pure_and_bit_identical_momentum(backend, device):
    """The inputs stay as they were; Momentum's first step is ``v = -lr * g`` exactly."""
    net, params = _params(backend, device)
    before = {k: xpnn.to_numpy(p).copy() for k, p in params.items()}
    g = {k: net.asarray(v) for k, v in _grad_sequence(params, 1)[0].items()}
    opt = Momentum(0.1, 0.9)
    state = opt.init(params)
    new, state = opt.update(params, g, state)
    for k in params:
        np.testing.assert_array_equal(xpnn.to_numpy(params[k]), before[k])
        v = -0.1 * xpnn.to_numpy(g[k])
        np.testing.assert_array_equal(xpnn.to_numpy(state[f"v.{k}"]), v)
        np.testing.assert_array_equal(xpnn.to_numpy(new[k]), before[k] + v)


def test_sgd_keeps_no_state_and_adam_counts_its_steps():
    _, params = _params("numpy", None)
    assert SGD(0.1).init(params) == {}
    state = Adam().init(params)
    assert state["t"].shape == () and float(state["t"]) == 0.0
    for _ in range(3):
        params, state = Adam().update(params, {k: p * 0.5 for k, p in params.items()}, state)
    assert float(state["t"]) == 3.0


# -- against torch.optim -------------------------------------------------------------------

# settings under which xpnn's formula and torch's coincide (see each class's docstring)
TORCH_CASES = {
    "sgd": ({"lr": 0.1}, "SGD", {"lr": 0.1}),
    "momentum": ({"lr": 0.1, "momentum": 0.9}, "SGD", {"lr": 0.1, "momentum": 0.9}),
    "adagrad": ({"lr": 0.1, "eps": 1e-7}, "Adagrad", {"lr": 0.1, "eps": 1e-7}),
    "rmsprop": (
        {"lr": 0.01, "decay": 0.9, "eps": 1e-7},
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-7},
    ),
    # eps negligible against sqrt(v): the place of eps (the one difference) does not matter
    "adam": (
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-30},
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-30},
    ),
}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_matches_torch_optim(backend, device, name):
    """50 steps against ``torch.optim`` in float64 (on JAX under ``nox -s slow``: the
    formulas above are the default run's oracle there)."""
    torch = pytest.importorskip("torch", reason="torch.optim is the reference")
    ours, torch_name, theirs = TORCH_CASES[name]
    net, params = _params(backend, device)
    grads = _grad_sequence(params)
    got, _ = _run_xpnn(net, OPTIMIZERS[name](**ours), params, grads)
    tensors = {k: torch.tensor(xpnn.to_numpy(p), dtype=torch.float64) for k, p in params.items()}
    for t in tensors.values():
        t.requires_grad_(True)
    opt = getattr(torch.optim, torch_name)(list(tensors.values()), **theirs)
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
    for k, t in tensors.items():
        np.testing.assert_allclose(got[k], t.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=k)


# -- what the optimisers refuse (the rest: tests/test_errors.py) ---------------------------


@pytest.mark.parametrize("cls", [AdaGrad, RMSProp, Adam])
def test_eps_must_be_positive_and_finite(cls):
    for eps in (0, -0.1, float("nan"), float("inf"), "1e-7", True, None, 10**400):
        with pytest.raises(XpnnValueError) as info:
            cls(eps=eps)
        assert info.value.argument == "eps", eps


def test_zero_betas_and_decay_are_allowed():
    assert Adam(beta1=0, beta2=0.0).beta1 == 0.0
    assert RMSProp(decay=0).decay == 0.0


def _bad_grads(case):
    """``(params, grads)``: an MLP's parameters and gradients of which ``W1`` is bad."""
    _, params = _params("numpy", None)
    grads = {k: np.ones(p.shape) for k, p in params.items()}
    if case == "None":
        grads["W1"] = None
    elif case == "0-d":
        grads["W1"] = np.asarray(1.0)
    elif case == "transposed":
        grads["W1"] = grads["W1"].T
    elif case == "float32":
        grads["W1"] = grads["W1"].astype(np.float32)
    elif case == "list":
        grads["W1"] = [[1.0] * 4] * 3
    elif case == "another backend":  # NumPy grads for array-api-strict parameters
        params = _params("array_api_strict", None)[1]
    return params, grads


GRAD_CASES = {
    "None": XpnnTypeError,
    "0-d": XpnnValueError,
    "transposed": XpnnValueError,
    "float32": XpnnTypeError,
    "list": XpnnTypeError,
    "another backend": XpnnTypeError,
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_update_refuses_a_gradient_unlike_its_parameter(case):
    """A gradient of another shape, dtype, kind or backend than its parameter is refused
    by every optimiser, naming it (grads keyed unlike the parameters: test_errors.py)."""
    params, grads = _bad_grads(case)
    for cls in OPTIMIZERS.values():
        opt = cls()
        with pytest.raises(GRAD_CASES[case]) as info:
            opt.update(params, grads, opt.init(params))
        assert "grads['W1']" in str(info.value), (cls, str(info.value))


def test_apply_is_update_unchecked_with_a_warning():
    """``Optimizer.apply``, the old name of ``update_unchecked``, works for one release."""
    _, params = _params("numpy", None)
    grads = {k: p * 0.5 for k, p in params.items()}
    opt = Momentum(0.1)
    with pytest.warns(DeprecationWarning, match="update_unchecked"):
        apply = opt.apply
    got = apply(params, grads, opt.init(params), xp=xpnn.get_namespace("numpy"))
    want = opt.update(params, grads, opt.init(params))
    for tree_got, tree_want in zip(got, want, strict=True):
        for key, value in tree_want.items():
            np.testing.assert_array_equal(tree_got[key], value)
