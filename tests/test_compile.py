"""The compiled step (``jax.jit``, ``torch.compile``): traced once per input shape, and
the same numbers as the eager step to 1e-12 in float64 over 200 steps.

``torch.compile`` takes 10-40 s per shape on a small CPU, so the default run keeps one
PyTorch case; the others are marked ``slow_compile`` and skipped unless
``XPNN_SLOW_COMPILE=1`` (``nox -s compile`` sets it)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.optim import OPTIMIZERS, Adam
from xpnn.step import make_step

STEPS = 200


def _rnn(backend, device, **kw):
    return xpnn.RNN(2, 5, 1, hidden="tanh", seed=4, backend=backend, device=device, **kw)


def _batches(net, n, batch):
    xs, ds = datasets.BinaryAdditionStream(batch, bits=5, seed=1).batches(0, n)
    x_all, d_all = net.asarray(xs), net.asarray(ds)
    return [
        (x_all[:, batch * i : batch * (i + 1), ...], d_all[:, batch * i : batch * (i + 1), ...])
        for i in range(n)
    ]


def _count_traces(backend: str, net) -> callable:
    """A function returning how often the step was traced so far: Python calls of the
    model's forward under jax.jit (it runs only while tracing); graphs dynamo compiled
    under torch.compile (dynamo guards on, and replays, Python side effects, so a counter
    in the model cannot be used there)."""
    if backend == "jax":
        calls: list[int] = []
        forward = net._forward

        def counted(*args):
            calls.append(1)
            return forward(*args)

        net._forward = counted
        return lambda: len(calls)
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    return lambda: counters["stats"]["unique_graphs"]


def test_a_step_is_traced_once_per_shape(backend, device):
    if backend not in ("jax", "torch"):
        pytest.skip(f"{backend}: nothing to compile (jax and torch compile a step)")
    net = _rnn(backend, device)
    traces = _count_traces(backend, net)
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


def _compare(backend, device, name, *, truncate, clip, many_to_one=False):
    net = _rnn(backend, device, bias=True, many_to_one=many_to_one)
    # lr 0.01: at 0.05 RMSProp's first steps (lr / sqrt(1 - decay) = 0.5 a weight) make
    # the run chaotic, and any rounding difference grows to 1e-7 in 200 steps
    opt = OPTIMIZERS[name](0.01)
    eager = make_step(net, opt, truncate=truncate, clip=clip, compile="off")
    compiled = make_step(net, opt, truncate=truncate, clip=clip, compile="on")
    assert compiled.compiled and not eager.compiled
    p_e = p_c = net.params
    s_e = s_c = opt.init(net.params)
    for x, d in _batches(net, STEPS, 3):
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


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_equals_eager_on_jax(backend, device, name):
    """Every optimiser, with truncated BPTT and clipping, 200 steps, float64."""
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's (torch.compile's are below)")
    _compare(backend, device, name, truncate=2, clip=0.5)


def test_compiled_equals_eager_on_jax_many_to_one_full_bptt(backend, device):
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's")
    _compare(backend, device, "momentum", truncate=None, clip=None, many_to_one=True)


def test_compiled_equals_eager_on_torch_adam(backend, device):
    """The one torch.compile case of the default run: Adam, truncate and clip."""
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    _compare(backend, device, "adam", truncate=2, clip=0.5)


@pytest.mark.slow
@pytest.mark.slow_compile
@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "adam"])
def test_compiled_equals_eager_on_torch(backend, device, name):
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    _compare(backend, device, name, truncate=2, clip=0.5)


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
