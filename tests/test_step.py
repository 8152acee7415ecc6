"""``make_step``: one pure training step, the same numbers as the model's checked methods
plus the optimiser's update, bit for bit; ``train`` runs it; the compile decision; the
model's unchecked core. (The refusals of bad arguments: tests/test_errors.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.backends import AUTO_TORCH_STEPS, BACKENDS, COMPILERS, compiler_for
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.nn.core import Core
from xpnn.optim import OPTIMIZERS, SGD, Adam, Momentum, clip_by_global_norm
from xpnn.training.loop import train
from xpnn.training.step import make_step


def _rnn(backend, device, **kw):
    return xpnn.RNN(2, 6, 1, hidden="tanh", seed=3, backend=backend, device=device, **kw)


def _bits(tree):
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in tree.items()}


@pytest.mark.parametrize(
    "name",
    # on JAX the default run keeps SGD and Adam (the least and the most state)
    [pytest.param(n, marks=pytest.mark.oracle) if n in ("sgd", "adam") else n for n in OPTIMIZERS],
)
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


@pytest.mark.oracle
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


@pytest.mark.oracle
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


# -- the compile decision ---------------------------------------------------------------


def test_the_auto_rule():
    """``compile="auto"``: JAX always; PyTorch for long runs only; the rest never. A
    decision needs no library loaded."""
    for name in BACKENDS:
        short = compiler_for(name, "auto", steps=100)
        long = compiler_for(name, "auto", steps=AUTO_TORCH_STEPS)
        unknown = compiler_for(name, "auto")
        want = {"jax": ("jax.jit",) * 3, "torch": (None, "torch.compile", None)}
        assert (short, long, unknown) == want.get(name, (None, None, None)), name
        assert compiler_for(name, "off", steps=AUTO_TORCH_STEPS) is None


@pytest.mark.parametrize("mode", ["yes", True, None, "ON"])
def test_an_unknown_compile_mode_is_refused(mode):
    with pytest.raises(XpnnValueError) as info:
        make_step(_rnn("numpy", None), SGD(), compile=mode)
    assert info.value.argument == "compile"


def test_compile_on_needs_a_compiling_backend():
    """``"on"`` is the backend's compiler, or a refusal naming ``compile``."""
    for name in BACKENDS:
        if name in COMPILERS:
            assert compiler_for(name, "on") == COMPILERS[name]
            continue
        with pytest.raises(XpnnValueError) as info:
            compiler_for(name, "on")
        assert info.value.argument == "compile", name
    with pytest.raises(XpnnValueError):
        make_step(_rnn("numpy", None), SGD(), compile="on")


@pytest.mark.oracle
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


# -- the callbacks -----------------------------------------------------------------------


@pytest.mark.parametrize("callback", ["on_log", "on_step"])
def test_train_refuses_a_callback_that_is_not_a_function_before_updating(callback):
    net = _rnn("numpy", None)
    before = _bits(net.params)
    stream = datasets.BinaryAdditionStream(2, bits=4)
    with pytest.raises(XpnnTypeError) as info:
        train(net, SGD(), stream, iters=3, **{callback: 5})
    assert info.value.argument == callback
    assert _bits(net.params) == before


# -- the model's core ----------------------------------------------------------------------


@pytest.mark.oracle
def test_the_unchecked_core_is_the_models_math_without_its_params(backend, device):
    """``model.core`` is a ``Core`` that holds no parameters, and computes what the
    checked methods compute, bit for bit; integer labels become one-hot rows."""
    mlp = xpnn.MLP([2, 3, 3], seed=1, backend=backend, device=device)
    rnn = xpnn.RNN(2, 4, 1, seed=1, backend=backend, device=device)
    x, labels = mlp.asarray([[0.5, -1.0], [2.0, 0.1]]), mlp.xp.asarray([2, 0], device=mlp.device)
    xs, ds = datasets.binary_addition(3, bits=4, seed=0)
    for net, inputs, targets in ((mlp, x, labels), (rnn, rnn.asarray(xs), rnn.asarray(ds))):
        core = net.core
        assert isinstance(core, Core) and not hasattr(core, "params")
        loss, grads = net.loss_and_grad(inputs, targets)
        rows = core.targets(targets)
        _y, cache = core.forward(net.params, inputs)
        assert float(core.loss(cache, rows)) == float(loss)
        assert _bits(core.backward(cache, rows)) == _bits(grads)
        value, again = core.value_and_grad(net.params, inputs, rows)
        assert float(value) == float(loss) and _bits(again) == _bits(grads)
    one_hot = xpnn.to_numpy(mlp.core.targets(labels))
    np.testing.assert_array_equal(one_hot, [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def test_the_old_unchecked_methods_still_work_with_a_warning():
    """``model.forward_unchecked(x, params)`` and the rest: ``model.core``'s, with a
    ``DeprecationWarning`` (for one release)."""
    net = xpnn.RNN(2, 4, 1, seed=1)
    xs, ds = (net.asarray(a) for a in datasets.binary_addition(3, bits=4, seed=0))
    with pytest.warns(DeprecationWarning, match="core.forward"):
        _y, cache = net.forward_unchecked(xs, net.params)
    with pytest.warns(DeprecationWarning, match="core.backward"):
        grads = net.backward_unchecked(cache, ds)
    assert _bits(grads) == _bits(net.core.backward(net.core.forward(net.params, xs)[1], ds))
