"""The scan hook of the backend protocol (``get_backend(name).scan``), the recurrent
driver's one loop over time: on every backend it is the loop written out by hand, to the
bit; under ``jax.jit`` it is ``lax.scan``, the jitted step equals the eager one to 1e-12
in float64 for every cell, and the traced program does not grow with the sequence."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backends import get_backend

pytestmark = pytest.mark.oracle

T, B, H = 5, 3, 4


def _bits(x) -> bytes:
    return np.ascontiguousarray(xpnn.to_numpy(x)).tobytes()


def _step(carry, x):
    """A step whose result depends on the order of the steps."""
    new = 0.5 * carry + x * x
    return new, new - x


def _by_hand(step, init, slices, reverse):
    """The loop a model would write: the last carry and the outputs in time order."""
    carry, ys = init, [None] * len(slices)
    for t in reversed(range(len(slices))) if reverse else range(len(slices)):
        carry, ys[t] = step(carry, slices[t])
    return carry, ys


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_is_the_loop_written_out_to_the_bit(backend, xp_device, reverse):
    xp, device = xp_device
    host = np.random.default_rng(0).normal(size=(T, B, H))
    xs = xp.asarray(host, dtype=xp.float32, device=device)
    init = xp.asarray(np.full((B, H), 0.25), dtype=xp.float32, device=device)
    carry, ys = get_backend(backend).scan(_step, init, xs, reverse=reverse)
    want_carry, want = _by_hand(_step, init, [xs[t, ...] for t in range(T)], reverse)
    assert tuple(ys.shape) == (T, B, H)
    assert _bits(carry) == _bits(want_carry)
    assert [_bits(ys[t, ...]) for t in range(T)] == [_bits(y) for y in want]


def test_reverse_runs_from_the_last_step_and_stacks_in_time_order(backend, xp_device):
    xp, device = xp_device
    xs = xp.asarray([1.0, 2.0, 3.0], device=device)
    # carry = 10 * carry + x: the digits show the order the steps ran in
    step = lambda c, x: (10.0 * c + x, c)  # noqa: E731
    scan = get_backend(backend).scan
    carry, ys = scan(step, xp.asarray(0.0, device=device), xs, reverse=True)
    assert float(carry) == 321.0
    assert xpnn.to_numpy(ys).tolist() == [32.0, 3.0, 0.0]  # each step's carry in, time order
    carry, ys = scan(step, xp.asarray(0.0, device=device), xs)
    assert float(carry) == 123.0
    assert xpnn.to_numpy(ys).tolist() == [0.0, 1.0, 12.0]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_tuples_and_none_to_the_bit(backend, xp_device, reverse):
    """``xs`` a tuple with a None entry (handed to every step as None), a carry of a
    pair (the LSTM's), outputs of nested tuples with None (stacked None stays None):
    the driver's trees, against the loop written out."""
    xp, device = xp_device
    rng = np.random.default_rng(1)
    a = xp.asarray(rng.normal(size=(T, B)), device=device)
    b = xp.asarray(rng.normal(size=(T, B, 2)), device=device)

    def step(carry, x):
        h, c = carry
        x_a, nothing, x_b = x
        assert nothing is None
        h = 0.5 * h + x_a
        c = c * 0.25 + x_b[:, 0] * h
        return (h, c), (h, (c + x_b[:, 1], None))

    init = (xp.zeros((B,), device=device), xp.ones((B,), device=device))
    carry, ys = get_backend(backend).scan(step, init, (a, None, b), reverse=reverse)
    slices = [(a[t, ...], None, b[t, ...]) for t in range(T)]
    want_carry, want = _by_hand(step, init, slices, reverse)
    assert [_bits(v) for v in carry] == [_bits(v) for v in want_carry]
    h_ys, (c_ys, nothing) = ys
    assert nothing is None
    assert tuple(h_ys.shape) == (T, B) and tuple(c_ys.shape) == (T, B)
    assert [_bits(h_ys[t, ...]) for t in range(T)] == [_bits(y[0]) for y in want]
    assert [_bits(c_ys[t, ...]) for t in range(T)] == [_bits(y[1][0]) for y in want]


# -- under jax.jit ------------------------------------------------------------------------


def _jax_only(backend: str) -> None:
    if backend != "jax":
        pytest.skip(f"{backend}: jax.jit's lax.scan")


def test_under_jit_it_is_lax_scan(backend, xp_device):
    """Traced, the hook is one ``lax.scan`` (forward and reverse, tuples and None), and
    the jitted result is the eager one's to 1e-12 in float64."""
    _jax_only(backend)
    import jax

    xp, device = xp_device
    jax_backend = get_backend(backend)
    jax_backend.enable_float64()  # what a float64 model does
    scan = jax_backend.scan
    rng = np.random.default_rng(2)
    xs = xp.asarray(rng.normal(size=(T, B, H)), dtype=xp.float64, device=device)
    init = xp.asarray(rng.normal(size=(B, H)), dtype=xp.float64, device=device)

    def run(init, xs, reverse):
        def step(carry, x):
            x_a, _ = x
            new, y = _step(carry, x_a)
            return new, (y, None)

        return scan(step, init, (xs, None), reverse=reverse)

    for reverse in (False, True):
        program = str(jax.make_jaxpr(lambda i, x, r=reverse: run(i, x, r))(init, xs))
        assert program.count("scan[") == 1, program
        (c1, (y1, n1)), (c2, (y2, n2)) = (
            jax.jit(run, static_argnums=2)(init, xs, reverse),
            run(init, xs, reverse),
        )
        assert n1 is None and n2 is None
        np.testing.assert_allclose(xpnn.to_numpy(c1), xpnn.to_numpy(c2), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xpnn.to_numpy(y1), xpnn.to_numpy(y2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("cell", "many_to_one", "truncate"),
    [("rnn", False, 7), ("lstm", False, 7), ("gru", True, None)],
    ids=["rnn-truncated", "lstm-truncated", "gru-many-to-one-full"],
)
def test_the_jitted_step_equals_the_eager_one_and_does_not_grow_with_T(
    backend, device, cell, many_to_one, truncate
):
    """A training step under ``jax.jit`` (its time loops ``lax.scan``) within 1e-12 of
    the eager step (the default loop) in float64, at T 50 and 200, many-to-many with
    truncated BPTT (the LSTM's paired carry too) and many-to-one with full BPTT. The whole blocks of
    truncated BPTT run as one scan over blocks, each a scan over its steps, so the traced
    step holds as many scans at T 200 as at T 50 (blocks of 7 and a shorter last one:
    one scan per block would be 9 and 30)."""
    _jax_only(backend)
    import jax

    scans = {}
    for steps in (50, 200):
        net = xpnn.RNN(
            2, 3, 1, cell=cell, output="identity", bias=True, many_to_one=many_to_one,
            seed=steps, backend=backend, device=device,
        )  # fmt: skip
        rng = np.random.default_rng(steps)
        xs = net.asarray(rng.normal(size=(steps, 4, 2)))
        ds = net.asarray(rng.normal(size=(4, 1) if many_to_one else (steps, 4, 1)))
        opt = xpnn.Adam(0.01)
        jitted = xpnn.make_step(net, opt, truncate=truncate, compile="on")
        eager = xpnn.make_step(net, opt, truncate=truncate, compile="off")
        assert jitted.compiled and not eager.compiled
        state = opt.init(net.params)
        scans[steps] = str(jax.make_jaxpr(eager.fn)(net.params, state, xs, ds)).count("scan[")
        got, got_state, loss = jitted(net.params, state, xs, ds)
        want, want_state, eager_loss = eager(net.params, state, xs, ds)
        for tree_got, tree_want in ((got, want), (got_state, want_state)):
            for key in tree_want:
                np.testing.assert_allclose(
                    xpnn.to_numpy(tree_got[key]), xpnn.to_numpy(tree_want[key]),
                    rtol=1e-12, atol=1e-12, err_msg=key,
                )  # fmt: skip
        assert abs(float(loss) - float(eager_loss)) <= 1e-12
    assert scans[50] == scans[200] <= 5, scans
