"""Devices: a model keeps everything on the device it was built on (its outputs, caches,
gradients, optimiser states and training readings), refuses a dtype its device lacks,
and names the devices it has when asked for one that does not exist.

array-api-strict has several virtual devices (``device1``, ``device2``, ``no_float64``)
and raises on any operation that mixes them, so a model array created without
``device=`` fails there. No model is built on PyTorch's ``meta`` device (tensors without
data). Arrays from another device than the model's are refused: tests/test_errors.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.backends import device_name, device_of
from xpnn.nn.gradcheck import gradient_check
from xpnn.optim import OPTIMIZERS, Adam
from xpnn.training.loop import train

RNG = np.random.default_rng(0)
X_MLP = RNG.standard_normal((5, 3))
LABELS = np.array([0, 2, 1, 1, 0])
XS_RNN = RNG.standard_normal((4, 3, 2))
DS_RNN = RNG.uniform(size=(4, 3, 1))


def _home_device(backend: str, device: str | None) -> str | None:
    """The device the model under test is built on: ``device1`` on array-api-strict (not
    its default, so a forgotten ``device=`` shows), else ``XPNN_DEVICE`` or the default."""
    if backend == "array_api_strict" and device is None:
        return "device1"
    return device


def _other_device(backend: str, home: object) -> str:
    """A second device of ``backend``, different from ``home``; skips where there is none."""
    xp = xpnn.get_namespace(backend)
    home_name = device_name(home)
    if backend == "array_api_strict":
        return "device2" if home_name != "device2" else "device1"
    if backend == "torch":
        return "meta"  # tensors without data: enough to check where arrays are refused
    others = [name for name in _known_devices(xp) if name != home_name]
    if not others:
        pytest.skip(f"{backend}: {home_name} is its only device here")
    return others[0]


def _known_devices(xp: object) -> list[str]:
    """The names of the devices the backend reports (torch's probe warns about a retired
    device type, which is not what these tests are about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        devices = xp.__array_namespace_info__().devices()
    return [device_name(d) for d in devices if d is not None]


def _mlp(backend: str, device: str | None, dtype: str = "float64") -> xpnn.MLP:
    return xpnn.MLP(
        [3, 4, 3],
        hidden="tanh",
        output="softmax",
        loss="cross_entropy",
        seed=0,
        backend=backend,
        device=device,
        dtype=dtype,
    )


def _rnn(backend: str, device: str | None, dtype: str = "float64", **kw: object) -> xpnn.RNN:
    return xpnn.RNN(2, 5, 1, seed=0, backend=backend, device=device, dtype=dtype, **kw)


def _devices(tree: object) -> set[str]:
    """The names of the devices of every array in ``tree`` (dicts, lists, tuples,
    dataclass caches)."""
    if tree is None or isinstance(tree, (int, float, str)):
        return set()
    if isinstance(tree, dict):
        return set().union(*(_devices(v) for v in tree.values()))
    if isinstance(tree, (list, tuple)):
        return set().union(*(_devices(v) for v in tree))
    if hasattr(tree, "__dataclass_fields__"):
        return set().union(*(_devices(getattr(tree, f)) for f in tree.__dataclass_fields__))
    return {device_name(device_of(tree))}


# -- a model keeps its arrays on its device -----------------------------------------------


def test_mlp_keeps_everything_on_its_device(backend: str, device: str | None) -> None:
    net = _mlp(backend, _home_device(backend, device))
    home = device_name(net.device)
    x = net.asarray(X_MLP)
    d_onehot = net.asarray(np.eye(3)[LABELS], name="d")
    d_labels = net.xp.asarray(LABELS, device=net.device)  # integer labels, on the device
    assert _devices(net.params) == {home}
    y, cache = net.forward(x)
    assert _devices((y, cache)) == {home}
    grads = net.backward(cache, d_onehot)
    assert _devices(grads) == {home}
    for d in (d_onehot, d_labels):
        loss, grads = net.loss_and_grad(x, d)
        assert _devices((loss, grads)) == {home}
    for optimizer in OPTIMIZERS.values():
        opt, params = optimizer(0.1), net.params
        state = opt.init(params)
        assert _devices(state) <= {home}
        for _ in range(2):  # the second step reads the state
            params, state = opt.update(params, grads, state)
            assert _devices((params, state)) == {home}
    assert set(gradient_check(net, x, d_labels)) == set(net.params)


@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("truncate", [None, 2])
def test_rnn_keeps_everything_on_its_device(
    backend: str, device: str | None, many_to_one: bool, truncate: int | None
) -> None:
    net = _rnn(backend, _home_device(backend, device), bias=True, many_to_one=many_to_one)
    home = device_name(net.device)
    xs = net.asarray(XS_RNN, name="xs")
    ds = net.asarray(DS_RNN[-1] if many_to_one else DS_RNN, name="ds")
    h0 = net.asarray(np.full((3, 5), 0.1), name="h0")
    assert _devices(net.params) == {home}
    for state in (None, h0):
        ys, cache = net.forward(xs, state)
        assert _devices((ys, cache)) == {home}
        assert _devices(net.backward(cache, ds, truncate=truncate)) == {home}
    loss, grads = net.loss_and_grad(xs, ds, truncate=truncate)
    assert _devices((loss, grads)) == {home}
    assert _devices(Adam(0.1).update(net.params, grads, Adam(0.1).init(net.params))) == {home}


def test_training_stays_on_the_device(backend: str, device: str | None) -> None:
    net = _rnn(backend, _home_device(backend, device))
    home = device_name(net.device)
    stream = datasets.BinaryAdditionStream(4, bits=4, seed=0)
    seen: set[str] = set()

    def log(event: object) -> None:
        seen.update(_devices((event.x, event.d, event.y)))

    result = train(net, Adam(0.1), stream, iters=3, log_every=1, truncate=2, on_log=log)
    assert seen == {home}
    assert _devices((result.params, result.opt_state)) == {home}
    assert _devices(net.params) == {home}


# -- what a backend's devices refuse ----------------------------------------------------------


def test_a_torch_model_is_not_built_on_meta() -> None:
    """Meta tensors hold no values: nothing could be computed there. (Arrays on another
    device than the model's: tests/test_errors.py.)"""
    pytest.importorskip("torch", reason="the meta device is PyTorch's")
    for make in (_mlp, _rnn):
        with pytest.raises(xpnn.XpnnValueError, match="meta"):
            make("torch", "meta")


# -- dtypes a device lacks, devices a backend lacks ----------------------------------------


def test_float64_on_a_device_without_it_is_refused() -> None:
    """array-api-strict's ``no_float64`` device: the refusal names the device and dtype."""
    for make in (_mlp, _rnn):
        with pytest.raises(xpnn.XpnnTypeError, match=r"'no_float64'.*float64") as info:
            make("array_api_strict", "no_float64", "float64")
        assert info.value.argument == "dtype"


def test_float32_on_a_device_without_float64_works() -> None:
    backend = "array_api_strict"
    net = _mlp(backend, "no_float64", "float32")
    x = net.asarray(X_MLP)
    labels = net.xp.asarray(LABELS, device=net.device)
    loss, grads = net.loss_and_grad(x, labels)
    assert _devices((loss, grads)) == {"no_float64"}
    rnn = _rnn(backend, "no_float64", "float32", bias=True)
    loss, grads = rnn.loss_and_grad(rnn.asarray(XS_RNN), rnn.asarray(DS_RNN), truncate=2)
    assert _devices((loss, grads)) == {"no_float64"}
    assert all(g.dtype == rnn.xp.float32 for g in grads.values())


@pytest.mark.jax_covering  # each backend lists its own devices
def test_a_device_that_does_not_exist_is_refused_with_the_list(backend: str) -> None:
    known = _known_devices(xpnn.get_namespace(backend))
    for make in (_mlp, _rnn):
        with pytest.raises(xpnn.XpnnValueError, match="nonexistent") as info:
            make(backend, "nonexistent")
        message = str(info.value)
        assert backend in message
        missing = [name for name in known if name not in message]
        assert not missing, message
