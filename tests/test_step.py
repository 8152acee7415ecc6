"""``make_step``: one pure training step, the same numbers as the model's checked methods
plus the optimiser's update, and ``train`` runs on it; bad arguments are refused before
anything runs."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.optim import OPTIMIZERS, SGD, Adam, Momentum
from xpnn.training.step import clip_by_global_norm, make_step
from xpnn.training.loop import train


def _rnn(backend, device, **kw):
    return xpnn.RNN(2, 6, 1, hidden="tanh", seed=3, backend=backend, device=device, **kw)


def _bits(tree):
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in tree.items()}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_is_forward_backward_clip_update(backend, device, name):
    """Three steps equal the checked public methods plus ``update``, bit for bit."""
    net = _rnn(backend, device)
    opt = OPTIMIZERS[name](0.1)
    step = make_step(net, opt, truncate=3, clip=0.5, compile="off")
    assert step.compiled is False
    xs, ds = datasets.binary_addition(5, bits=6, seed=1)
    x, d = net.asarray(xs), net.asarray(ds)
    params, state = net.params, opt.init(net.params)
    ref_params, ref_state = net.params, opt.init(net.params)
    before = _bits(params)
    for _ in range(3):
        params, state, loss = step(params, state, x, d)
        ref = xpnn.RNN.from_params(
            {k: xpnn.to_numpy(v) for k, v in ref_params.items()},
            hidden="tanh",
            backend=backend,
            device=device,
        )
        ref_loss, grads = ref.loss_and_grad(x, d, truncate=3)
        grads = clip_by_global_norm(grads, 0.5, net.xp)
        ref_params, ref_state = opt.update(ref_params, grads, ref_state)
        assert tuple(loss.shape) == ()
        assert float(loss) == float(ref_loss)
    assert _bits(params) == _bits(ref_params)
    assert _bits(state) == _bits(ref_state)
    assert _bits(net.params) == before  # the step never touches the model


def test_mlp_step(backend, device):
    net = xpnn.MLP([2, 5, 3], seed=0, backend=backend, device=device)
    x, d = datasets.blobs(8, seed=0)
    x, d = net.asarray(x), net.asarray(d)
    opt = Momentum(0.1)
    params, _state, loss = make_step(net, opt, compile="off")(
        net.params, opt.init(net.params), x, d
    )
    ref_loss, grads = net.loss_and_grad(x, d)
    want, _ = opt.update(net.params, grads, opt.init(net.params))
    assert float(loss) == float(ref_loss)
    assert _bits(params) == _bits(want)


def test_train_is_the_step_in_a_loop(backend, device):
    """``train`` gives the parameters of the raw step called on the stream's batches."""
    stream = datasets.BinaryAdditionStream(3, bits=5, seed=2)
    net = _rnn(backend, device)
    opt = Adam(0.05)
    result = train(net, opt, stream, iters=20, log_every=7, clip=1.0, compile="off")
    raw = _rnn(backend, device)
    step = make_step(raw, opt, clip=1.0, compile="off")
    params, state = raw.params, opt.init(raw.params)
    xs, ds = stream.batches(0, 20)
    x_all, d_all = raw.asarray(xs), raw.asarray(ds)
    losses = {}
    for i in range(20):
        x, d = x_all[:, 3 * i : 3 * (i + 1), ...], d_all[:, 3 * i : 3 * (i + 1), ...]
        params, state, loss = step(params, state, x, d)
        losses[i] = float(loss)
    assert _bits(result.params) == _bits(params) == _bits(net.params)
    assert _bits(result.opt_state) == _bits(state)
    assert result.history == tuple((i, losses[i]) for i in (0, 7, 14, 19))
    assert result.stats.compiled is False


def test_train_continues_from_a_given_state(backend, device):
    """Two halves with the state handed over equal one run (what resuming relies on)."""
    stream = datasets.BinaryAdditionStream(2, bits=4, seed=0)
    one = _rnn(backend, device)
    whole = train(one, Adam(0.05), stream, iters=30, compile="off")
    two = _rnn(backend, device)
    half = train(two, Adam(0.05), stream, iters=13, compile="off")
    rest = train(two, Adam(0.05), stream, iters=30, start=13, state=half.opt_state, compile="off")
    assert _bits(rest.params) == _bits(whole.params)
    assert _bits(rest.opt_state) == _bits(whole.opt_state)


# -- refused before the first update --------------------------------------------------------


def test_train_refuses_a_foreign_state_before_updating(backend, device):
    net = _rnn(backend, device)
    before = _bits(net.params)
    stream = datasets.BinaryAdditionStream(2, bits=4)
    with pytest.raises(XpnnValueError, match=r"state does not belong to Adam"):
        train(net, Adam(), stream, iters=3, state=Momentum().init(net.params))
    nan = {k: v * float("nan") for k, v in Adam().init(net.params).items()}
    with pytest.raises(XpnnValueError, match=r"state\['m.W_in'\] contains NaN or infinity"):
        train(net, Adam(), stream, iters=3, state=nan)
    assert _bits(net.params) == before


@pytest.mark.parametrize("callback", ["on_log", "on_step"])
def test_train_refuses_a_callback_that_is_not_a_function_before_updating(backend, device, callback):
    net = _rnn(backend, device)
    before = _bits(net.params)
    stream = datasets.BinaryAdditionStream(2, bits=4)
    with pytest.raises(XpnnTypeError, match=rf"{callback} must be a function or None, got int"):
        train(net, SGD(), stream, iters=3, **{callback: 5})
    assert _bits(net.params) == before


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        ({"compile": "yes"}, XpnnValueError, r"compile must be one of auto, on, off, got 'yes'"),
        ({"compile": True}, XpnnValueError, r"compile must be one of auto, on, off, got True"),
        ({"clip": 0}, XpnnValueError, r"clip must be a positive finite number, got 0"),
        ({"truncate": 0}, XpnnValueError, r"truncate must be an integer from 1 to"),
    ],
)
def test_make_step_refuses(backend, device, kwargs, kind, match):
    with pytest.raises(kind, match=match):
        make_step(_rnn(backend, device), SGD(), **kwargs)


def test_make_step_refuses_non_xpnn_objects(backend, device):
    net = _rnn(backend, device)
    with pytest.raises(XpnnTypeError, match=r"optimizer must be an xpnn optimiser"):
        make_step(net, object())
    with pytest.raises(XpnnTypeError, match=r"model must be an xpnn MLP or RNN, got dict"):
        make_step({}, SGD())
    mlp = xpnn.MLP([2, 2], backend=backend, device=device)
    with pytest.raises(XpnnValueError, match=r"truncate applies to an RNN only"):
        make_step(mlp, SGD(), truncate=2)


def test_compile_on_needs_a_compiling_backend(backend, device):
    net = _rnn(backend, device)
    if backend in ("jax", "torch"):
        assert make_step(net, SGD(), compile="on").compiled is True
        return
    with pytest.raises(
        XpnnValueError,
        match=rf"compile 'on' needs a backend that compiles "
        rf"\(jax, torch\); {backend} runs the step eagerly",
    ):
        make_step(net, SGD(), compile="on")
    assert make_step(net, SGD(), compile="auto").compiled is False


def test_the_auto_rule(backend, device):
    """JAX: always; PyTorch: for long runs only; the rest: never."""
    from xpnn.backends import AUTO_TORCH_STEPS

    net = _rnn(backend, device)
    short = make_step(net, SGD(), compile="auto", steps=100).compiled
    long = make_step(net, SGD(), compile="auto", steps=AUTO_TORCH_STEPS).compiled
    assert (short, long) == {"jax": (True, True), "torch": (False, True)}.get(
        backend, (False, False)
    )


def test_the_auto_rule_compiles_long_sequences_on_jax(backend, device):
    """The time loop is one ``lax.scan`` under ``jax.jit``, so ``auto`` compiles an RNN's
    step on JAX whatever the sequence length (it once left T > 32 eager); ``train`` runs
    the adding problem at T 40 compiled there, eagerly elsewhere."""
    stream = datasets.AddingProblemStream(2, steps=40, seed=0)
    many_to_one = xpnn.RNN(
        2, 3, 1, output="identity", many_to_one=True, backend=backend, device=device
    )
    result = train(many_to_one, SGD(0.01), stream, iters=2, log_every=1, compile="auto")
    assert result.stats.compiled is (backend == "jax")


def test_the_unchecked_core_is_the_models_math_without_its_params(backend, device):
    """``model.core`` implements ``ModelCore``, holds no parameters, and computes what the
    checked methods compute; integer labels become one-hot rows."""
    from xpnn.nn.core import ModelCore

    mlp = xpnn.MLP([2, 3, 3], seed=1, backend=backend, device=device)
    rnn = xpnn.RNN(2, 4, 1, seed=1, backend=backend, device=device)
    x, labels = mlp.asarray([[0.5, -1.0], [2.0, 0.1]]), mlp.xp.asarray([2, 0], device=device)
    xs, ds = datasets.binary_addition(3, bits=4, seed=0)
    for net, inputs, targets in ((mlp, x, labels), (rnn, rnn.asarray(xs), rnn.asarray(ds))):
        core = net.core
        assert isinstance(net, ModelCore) and isinstance(core, ModelCore)
        assert core.params == {} and core is not net
        loss, grads = net.loss_and_grad(inputs, targets)
        rows = core.targets_unchecked(targets)
        _y, cache = core.forward_unchecked(inputs, net.params)
        assert float(core.loss_unchecked(cache, rows)) == float(loss)
        got = core.backward_unchecked(cache, rows)
        assert _bits(got) == _bits(grads)
    one_hot = xpnn.to_numpy(mlp.targets_unchecked(labels))
    np.testing.assert_array_equal(one_hot, [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
