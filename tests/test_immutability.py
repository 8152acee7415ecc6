"""No model code writes into an array in place.

On NumPy every input and parameter is made read-only (``flags.writeable = False``), and
so is every array a model's core or an optimiser hands back (caches, gradients, updated
parameters, momentum): an in-place write into any of them raises ``ValueError``. Writes
into an array a function has just made itself are not visible this way; the JAX run of
the suite, whose arrays cannot be written at all, covers those (every JAX test does;
this sequence runs on JAX under ``nox -s slow``). The other backends skip (their arrays
are writable and cannot be frozen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.nn.gradcheck import gradient_check
from xpnn.optim import OPTIMIZERS
from xpnn.training.loop import train

RNG = np.random.default_rng(1)


def _freeze(tree: Any) -> Any:
    """Make every NumPy array in ``tree`` read-only (dicts, lists, tuples, dataclasses);
    return ``tree``."""
    if isinstance(tree, np.ndarray):
        tree.flags.writeable = False
    elif isinstance(tree, dict):
        for value in tree.values():
            _freeze(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            _freeze(value)
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        for f in dataclasses.fields(tree):
            _freeze(getattr(tree, f.name))
    return tree


def _frozen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its arguments and its result frozen."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _freeze((args, dict(kwargs)))
        return _freeze(fn(*args, **kwargs))

    return wrapper


def _immutable_backend(backend: str) -> None:
    if backend not in ("numpy", "jax"):
        pytest.skip(f"{backend}: its arrays can be neither frozen nor are they immutable")


class _FrozenCore:
    """A model's core whose functions take and return frozen arrays: what the model's
    checked methods, ``make_step``, ``train`` and ``gradient_check`` run."""

    FUNCTIONS = ("forward", "loss", "backward", "targets", "value_and_grad")

    def __init__(self, core: Any) -> None:
        self._core = core

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._core, name)
        return _frozen(value) if name in self.FUNCTIONS else value


def _guard(model: Any) -> Any:
    """Freeze ``model``'s parameters and put its core behind ``_FrozenCore``, so that
    every cache, gradient and loss it returns is frozen as well (on NumPy; a no-op on
    JAX)."""
    _freeze(model.params)
    model.core = _FrozenCore(model.core)  # the cached core, replaced on this model
    return model


def _frozen_optimizer(optimizer: Any) -> Any:
    """``optimizer`` whose state and updates come back frozen (``update`` and the step
    run ``update_unchecked``); an optimiser refuses attribute changes, so they go past
    its ``__setattr__``."""
    object.__setattr__(optimizer, "init", _frozen(optimizer.init))
    object.__setattr__(optimizer, "update_unchecked", _frozen(optimizer.update_unchecked))
    return optimizer


def _snapshot(params: dict[str, Any]) -> dict[str, np.ndarray]:
    return {key: np.array(xpnn.to_numpy(value), copy=True) for key, value in params.items()}


def _assert_unchanged(before: dict[str, np.ndarray], params: dict[str, Any]) -> None:
    for key, value in before.items():
        np.testing.assert_array_equal(xpnn.to_numpy(params[key]), value, err_msg=key)


def _exercise(model: Any, x: Any, d: Any, *, truncate: int | None = None) -> None:
    """forward, backward, loss_and_grad, every optimiser and a gradient check, with
    every array read-only; the model's parameters must come out unchanged."""
    before = _snapshot(model.params)
    kw = {} if truncate is None else {"truncate": truncate}
    _freeze((x, d))
    _y, cache = model.forward(x)
    grads = model.backward(cache, d, **kw)
    _loss, grads = model.loss_and_grad(x, d, **kw)
    model.loss(x, d)
    model.predict(x)
    for name, cls in OPTIMIZERS.items():
        optimizer = _frozen_optimizer(cls(0.1))
        params = model.params
        state = optimizer.init(params)
        for _ in range(3):  # the state read (frozen) from the second step on
            params, state = optimizer.update(params, grads, state)
        assert set(state) == set(optimizer.init(model.params)), name
    errors = gradient_check(model, x, d, **kw)
    assert max(errors.values()) < 1e-6, errors
    _assert_unchanged(before, model.params)


@pytest.mark.parametrize(
    ("output", "loss", "labels"),
    [
        ("softmax", "cross_entropy", False),
        ("softmax", "cross_entropy", True),
        ("sigmoid", "mse", False),
        ("identity", "mse", False),
    ],
)
@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "tanh"])
def test_mlp_writes_nothing_in_place(
    backend: str, device: str | None, hidden: str, output: str, loss: str, labels: bool
) -> None:
    _immutable_backend(backend)
    net = xpnn.MLP(
        [3, 5, 4, 3],
        hidden=hidden,
        output=output,
        loss=loss,
        seed=0,
        backend=backend,
        device=device,
    )
    _guard(net)
    x = net.asarray(RNG.standard_normal((6, 3)))
    if labels:
        d = net.xp.asarray(np.array([0, 1, 2, 2, 1, 0]), device=net.device)
    else:
        d = net.asarray(np.eye(3)[[0, 1, 2, 2, 1, 0]], name="d")
    _exercise(net, x, d)


@pytest.mark.parametrize("truncate", [None, 1, 2])
@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_rnn_writes_nothing_in_place(
    backend: str, device: str | None, bias: bool, many_to_one: bool, truncate: int | None
) -> None:
    _immutable_backend(backend)
    net = xpnn.RNN(
        2,
        4,
        2,
        hidden="tanh",
        output="sigmoid",
        loss="mse",
        bias=bias,
        many_to_one=many_to_one,
        seed=0,
        backend=backend,
        device=device,
    )
    _guard(net)
    xs = net.asarray(RNG.standard_normal((5, 3, 2)), name="xs")
    ds = net.asarray(RNG.uniform(size=(3, 2) if many_to_one else (5, 3, 2)), name="ds")
    _exercise(net, xs, ds, truncate=truncate)
    h0 = _freeze(net.asarray(np.full((3, 4), 0.2), name="h0"))
    _ys, cache = net.forward(xs, h0)
    net.backward(cache, ds, truncate=truncate)


class _FrozenStream:
    """A data stream whose batches are read-only host arrays."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.batch_size = stream, stream.batch_size
        for name in ("target_axis", "batch_axis"):
            if hasattr(stream, name):
                setattr(self, name, getattr(stream, name))

    def batches(self, start: int, stop: int) -> Any:
        return _freeze(self.stream.batches(start, stop))


@pytest.mark.parametrize("truncate", [None, 3])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS.values()))
def test_training_writes_nothing_in_place(
    backend: str, device: str | None, optimizer: type, truncate: int | None
) -> None:
    _immutable_backend(backend)
    rnn = _guard(xpnn.RNN(2, 6, 1, seed=0, backend=backend, device=device))
    before = _snapshot(rnn.params)
    stream = _FrozenStream(datasets.BinaryAdditionStream(4, bits=6, seed=0))
    result = train(
        rnn,
        _frozen_optimizer(optimizer(0.1)),
        stream,
        iters=5,
        log_every=2,
        truncate=truncate,
        clip=1.0,
    )
    assert [i for i, _ in result.history] == [0, 2, 4]
    assert any(
        not np.array_equal(xpnn.to_numpy(result.params[k]), before[k]) for k in before
    )  # it trained

    mlp = _guard(
        xpnn.MLP(
            [2, 4, 1],
            hidden="relu",
            output="identity",
            loss="mse",
            seed=0,
            backend=backend,
            device=device,
        )
    )
    x, d = datasets.linear(50, seed=0)
    stream = _FrozenStream(datasets.SampleStream(x, d, 5, seed=0))
    train(mlp, _frozen_optimizer(optimizer(0.05)), stream, iters=4, log_every=1)
