"""The compiled step (``jax.jit``, ``torch.compile``): traced once per input shape, and
the same numbers as the eager step to 1e-12 in float64 over 200 steps.

``torch.compile`` takes 10-40 s per shape on a small CPU, so the default run keeps one
PyTorch case; the others are marked ``slow_compile`` and skipped unless
``XPNN_SLOW_COMPILE=1`` (``nox -s compile`` sets it)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.nn.rnn import RNNCore
from xpnn.optim import OPTIMIZERS, Adam
from xpnn.training import loop
from xpnn.training.loop import train
from xpnn.training.plan import make_plan
from xpnn.training.state import TrainState
from xpnn.training.step import make_step

STEPS = 200


def _rnn(backend, device, cell="rnn", **kw):
    hidden = "tanh" if cell == "rnn" else None
    return xpnn.RNN(2, 5, 1, cell=cell, hidden=hidden, seed=4, backend=backend, device=device, **kw)


def _batches(net, n, batch):
    xs, ds = datasets.BinaryAdditionStream(batch, bits=5, seed=1).batches(0, n)
    x_all, d_all = net.asarray(xs), net.asarray(ds)
    return [
        (x_all[:, batch * i : batch * (i + 1), ...], d_all[:, batch * i : batch * (i + 1), ...])
        for i in range(n)
    ]


def _count_traces(backend: str, monkeypatch) -> callable:
    """A function returning how often the step was traced so far: Python calls of the
    RNN core's forward under jax.jit (a compiled step runs it only while tracing); graphs
    dynamo compiled under torch.compile (dynamo guards on, and replays, Python side
    effects, so a counter in the model cannot be used there)."""
    if backend == "jax":
        calls: list[int] = []
        forward = RNNCore.forward

        def counted(*args, **kwargs):
            calls.append(1)
            return forward(*args, **kwargs)

        monkeypatch.setattr(RNNCore, "forward", counted)
        return lambda: len(calls)
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    return lambda: counters["stats"]["unique_graphs"]


@pytest.mark.oracle
def test_a_step_is_traced_once_per_shape(backend, device, monkeypatch):
    if backend not in ("jax", "torch"):
        pytest.skip(f"{backend}: nothing to compile (jax and torch compile a step)")
    if backend == "torch" and os.environ.get("XPNN_SLOW_COMPILE") != "1":
        pytest.skip(
            "torch: two torch.compile runs (10-40 s each); the default run's one torch.compile "
            "counts its traces in test_compiled_equals_eager_on_torch_adam; XPNN_SLOW_COMPILE=1"
        )
    net = _rnn(backend, device)
    traces = _count_traces(backend, monkeypatch)
    opt = Adam(0.01)
    step = make_step(net, opt, compile="on")
    params, state = net.params, opt.init(net.params)
    for x, d in _batches(net, 100, 4):
        params, state, loss = step(params, state, x, d)
    float(loss)
    assert traces() == 1
    for x, d in _batches(net, 3, 7):  # a new batch size: traced again, not an error
        params, state, loss = step(params, state, x, d)
    assert np.isfinite(float(loss))
    assert traces() == 2


def _compare(backend, device, name, *, truncate, clip, many_to_one=False, cell="rnn", steps=STEPS):
    """``steps`` steps of the step compiled and eager from the same start: the same
    losses, parameters and optimiser state to 1e-12 in float64. Returns the model."""
    net = _rnn(backend, device, bias=True, many_to_one=many_to_one, cell=cell)
    # lr 0.01: at 0.05 RMSProp's first steps (lr / sqrt(1 - decay) = 0.5 a weight) make
    # the run chaotic, and any rounding difference grows to 1e-7 in 200 steps
    opt = OPTIMIZERS[name](0.01)
    eager = make_step(net, opt, truncate=truncate, clip=clip, compile="off")
    compiled = make_step(net, opt, truncate=truncate, clip=clip, compile="on")
    assert compiled.compiled and not eager.compiled
    p_e = p_c = net.params
    s_e = s_c = opt.init(net.params)
    for x, d in _batches(net, steps, 3):
        if many_to_one:
            d = d[-1, ...]
        p_e, s_e, l_e = eager(p_e, s_e, x, d)
        p_c, s_c, l_c = compiled(p_c, s_c, x, d)
    np.testing.assert_allclose(float(l_c), float(l_e), rtol=1e-12, atol=1e-12)
    for k in p_e:
        got, want = xpnn.to_numpy(p_c[k]), xpnn.to_numpy(p_e[k])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=k)
    for k in s_e:
        got, want = xpnn.to_numpy(s_c[k]), xpnn.to_numpy(s_e[k])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=k)
    return net


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name", [n if n == "sgd" else pytest.param(n, marks=pytest.mark.slow) for n in OPTIMIZERS]
)
def test_compiled_equals_eager_on_jax(backend, device, name):
    """Every optimiser, with truncated BPTT and clipping, 200 steps, float64. The default
    run: SGD here; the other optimisers' compiled state in the cells' case (Momentum)
    and in ``train``'s compiled loop below (Adam, RMSProp, AdaGrad); the rest under
    ``nox -s slow``."""
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's (torch.compile's are below)")
    _compare(backend, device, name, truncate=2, clip=0.5)


@pytest.mark.oracle
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compiled_gated_cells_equal_eager_on_jax(backend, device, cell):
    """The gated cells' carry through 100 Momentum steps, many-to-one, full BPTT (the
    simple RNN's many-to-one: in ``train``'s compiled loop below)."""
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's")
    _compare(
        backend, device, "momentum", truncate=None, clip=None, many_to_one=True, cell=cell,
        steps=100,
    )  # fmt: skip


@pytest.mark.oracle
def test_compiled_equals_eager_on_torch_adam(backend, device, monkeypatch):
    """The one torch.compile case of the default run: Adam, truncate and clip; 200 steps
    of one batch shape traced once."""
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    traces = _count_traces(backend, monkeypatch)
    _compare(backend, device, "adam", truncate=2, clip=0.5)
    assert traces() == 1


@pytest.mark.slow
@pytest.mark.slow_compile
@pytest.mark.parametrize(
    ("name", "cell"),
    [*((n, "rnn") for n in OPTIMIZERS if n != "adam"), ("adam", "lstm"), ("adam", "gru")],
)
def test_compiled_equals_eager_on_torch(backend, device, name, cell):
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    _compare(backend, device, name, truncate=2, clip=0.5, many_to_one=cell != "rnn", cell=cell)


@pytest.mark.slow
@pytest.mark.slow_compile
def test_a_process_compiles_more_torch_steps_than_dynamos_recompile_limit(backend, device):
    """torch.compile keeps at most ``recompile_limit`` (8) graphs a code object; every
    compiled step has a code of its own, so a process (a benchmark, a notebook, a sweep's
    worker) may compile more steps than that, each a network of another shape."""
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    import torch

    x, d = datasets.blobs(16, seed=0)
    for hidden in range(2, torch._dynamo.config.recompile_limit + 4):
        net = xpnn.MLP([2, hidden, 3], seed=1, backend=backend, device=device)
        opt = xpnn.SGD(0.1)
        args = (net.params, opt.init(net.params), net.asarray(x), net.asarray(d))
        eager = make_step(net, opt, compile="off")(*args)[2]
        compiled = make_step(net, opt, compile="on")(*args)[2]
        assert float(compiled) == pytest.approx(float(eager), rel=1e-12)


def _compare_mlp(backend, device):
    net = xpnn.MLP([2, 8, 3], seed=1, backend=backend, device=device)
    opt = OPTIMIZERS["rmsprop"](0.01)
    eager = make_step(net, opt, clip=1.0, compile="off")
    compiled = make_step(net, opt, clip=1.0, compile="on")
    x, d = datasets.blobs(16, seed=0)
    x, d = net.asarray(x), net.asarray(d)
    p_e = p_c = net.params
    s_e = s_c = opt.init(net.params)
    for _ in range(STEPS):
        p_e, s_e, _ = eager(p_e, s_e, x, d)
        p_c, s_c, _ = compiled(p_c, s_c, x, d)
    for k in p_e:
        np.testing.assert_allclose(
            xpnn.to_numpy(p_c[k]), xpnn.to_numpy(p_e[k]), rtol=1e-12, atol=1e-12
        )


@pytest.mark.slow  # the MLP's compiled step: also in train's compiled loop below
def test_compiled_mlp_equals_eager_on_jax(backend, device):
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's")
    _compare_mlp(backend, device)


@pytest.mark.slow
@pytest.mark.slow_compile
def test_compiled_mlp_equals_eager_on_torch(backend, device):
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    _compare_mlp(backend, device)


# -- train(): a compiled JAX step runs the iterations between readings in one call --------


def _train_both(make_net, stream, name, **kw):
    """``train`` with the step eager, then compiled, with optimiser ``name``: each run's
    result, and the compiled run's ``Step``."""
    results = []
    for compile in ("off", "on"):
        net, opt = make_net(), OPTIMIZERS[name](0.01)
        logged: list[int] = []
        result = train(
            net,
            opt,
            stream,
            compile=compile,
            on_log=lambda e, seen=logged: seen.append(e.iteration),
            **kw,
        )
        assert result.stats.compiled == (compile == "on")
        assert logged == [i for i, _ in result.history]
        results.append(result)
    plan = make_plan(net, opt, iters=kw["iters"], clip=kw.get("clip"), compile="on")
    return results, loop._step_for(net, plan)


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("layout", "name"), [("rnn", "adam"), ("many_to_one", "adagrad"), ("mlp", "rmsprop")]
)
def test_train_on_jax_runs_spans_in_one_compiled_loop(backend, device, layout, name):
    """300 iterations over three stream chunks (128 each), readings every 50: the same
    history, parameters and state as the eager step, to 1e-12 in float64, and one compile
    of the loop for all the spans (their bounds are traced, not baked in)."""
    if backend != "jax":
        pytest.skip(f"{backend}: only a compiled JAX step runs spans in one call")
    if layout == "mlp":
        x, d = datasets.blobs(64, seed=0)
        stream = datasets.SampleStream(x, d, batch_size=8, seed=2)
        net = lambda: xpnn.MLP([2, 8, 3], seed=1, backend=backend, device=device)  # noqa: E731
    elif layout == "many_to_one":  # (T, B, 2) inputs, (B, 1) targets: two batch axes
        stream = datasets.AddingProblemStream(3, steps=6, seed=2)
        net = lambda: _rnn(backend, device, many_to_one=True)  # noqa: E731
    else:
        stream = datasets.BinaryAdditionStream(3, bits=5, seed=2)
        net = lambda: _rnn(backend, device)  # noqa: E731
    (eager, compiled), step = _train_both(net, stream, name, iters=300, log_every=50, clip=0.5)
    assert [i for i, _ in compiled.history] == [0, 50, 100, 150, 200, 250, 299]
    assert [i for i, _ in eager.history] == [i for i, _ in compiled.history]
    np.testing.assert_allclose(
        [v for _, v in compiled.history], [v for _, v in eager.history], rtol=1e-12, atol=1e-12
    )
    for tree in ("params", "opt_state"):
        want, got = getattr(eager, tree), getattr(compiled, tree)
        for k in want:
            np.testing.assert_allclose(
                xpnn.to_numpy(got[k]), xpnn.to_numpy(want[k]), rtol=1e-12, atol=1e-12, err_msg=k
            )
    (spans,) = step._loops.values()
    assert spans._cache_size() == 1


@pytest.mark.oracle
def test_train_on_jax_in_pieces_equals_one_run(backend, device):
    """Resumed pieces cut the spans elsewhere; the numbers are the same bits."""
    if backend != "jax":
        pytest.skip(f"{backend}: only a compiled JAX step runs spans in one call")
    stream = datasets.BinaryAdditionStream(2, bits=5, seed=3)
    one, opt = _rnn(backend, device), OPTIMIZERS["momentum"](0.05)
    train(one, opt, stream, iters=300, compile="on")
    pieces, result = _rnn(backend, device), None
    for stop in (77, 128, 129, 300):
        result = train(pieces, opt, stream, iters=stop, resume_from=result, compile="on")
    for k in one.params:
        np.testing.assert_array_equal(
            xpnn.to_numpy(pieces.params[k]), xpnn.to_numpy(one.params[k]), err_msg=k
        )


@pytest.mark.parametrize("compile", ["off", pytest.param("on", marks=pytest.mark.oracle)])
def test_on_step_is_called_at_multiples_of_on_step_every(backend, device, compile):
    if compile == "on" and backend not in ("jax", "torch"):
        pytest.skip(f"{backend}: nothing to compile")
    if compile == "on" and backend == "torch":
        pytest.skip("torch: a torch.compile of this step is slow; the eager case covers it")
    net, opt = _rnn(backend, device), OPTIMIZERS["sgd"](0.1)
    stream = datasets.BinaryAdditionStream(1, bits=5, seed=0)
    calls: list[tuple[int, float]] = []

    def on_step(state):
        calls.append((state.step, xpnn.to_numpy(state.params["W"]).copy()))

    def from_10(net):
        return TrainState(10, net.params, None)

    train(
        net,
        opt,
        stream,
        iters=300,
        resume_from=from_10(net),
        log_every=100,
        on_step=on_step,
        on_step_every=64,
        compile=compile,
    )
    assert [done for done, _ in calls] == [64, 128, 192, 256]
    for done, w in (calls[0], calls[-1]):  # the state's params: those after `done`
        again = _rnn(backend, device)
        train(again, opt, stream, iters=done, resume_from=from_10(again), compile=compile)
        np.testing.assert_array_equal(w, xpnn.to_numpy(again.params["W"]))


def test_a_models_step_is_kept_however_many_other_models_train():
    """A continued run reuses its model's step (a compiled one is not compiled again),
    even after many other models trained in between."""
    stream = datasets.BinaryAdditionStream(1, bits=5, seed=0)
    nets = [xpnn.RNN(2, 3, 1, seed=k) for k in range(12)]
    opt = OPTIMIZERS["sgd"](0.1)
    plan = make_plan(nets[0], opt, iters=2)
    first = loop._step_for(nets[0], plan)
    for net in nets:
        train(net, opt, stream, iters=2)
    assert loop._step_for(nets[0], plan) is first


def test_the_kept_steps_do_not_keep_a_model_alive():
    """The steps are kept by model in a weak dictionary, and built on ``model.core``: once
    nothing else holds the model, it and its steps go."""
    import gc
    import weakref

    net = xpnn.RNN(2, 3, 1, seed=0)
    train(net, OPTIMIZERS["sgd"](0.1), datasets.BinaryAdditionStream(1, bits=5), iters=2)
    assert net in loop._STEPS
    gone = weakref.ref(net)
    del net
    gc.collect()
    assert gone() is None
