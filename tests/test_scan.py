"""``xpnn.backends.scan``: the loop primitive of the recurrent driver, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.backends import scan
from xpnn.errors import XpnnValueError

T, B, H = 5, 3, 4


def _bits(x) -> bytes:
    return xpnn.to_numpy(x).tobytes()


def _step(carry, x):
    """A step whose result depends on the order of the steps."""
    new = 0.5 * carry + x * x
    return new, new - x


def test_scan_is_the_loop_to_the_bit(backend, xp_device):
    """Eagerly, ``scan`` runs exactly what a hand-written loop runs (forward and reverse)."""
    xp, device = xp_device
    host = np.random.default_rng(0).normal(size=(T, B, H))
    xs = xp.asarray(host, dtype=xp.float32, device=device)
    for reverse in (False, True):
        carry, ys = scan(_step, xp.zeros_like(xs[0, ...]), xs, reverse=reverse, backend=backend)
        expected_carry, expected = xp.zeros_like(xs[0, ...]), [None] * T
        for t in reversed(range(T)) if reverse else range(T):
            expected_carry, expected[t] = _step(expected_carry, xs[t, ...])
        assert tuple(ys.shape) == (T, B, H)
        assert _bits(carry) == _bits(expected_carry)
        assert [_bits(ys[t, ...]) for t in range(T)] == [_bits(y) for y in expected]


def test_reverse_runs_from_the_last_step_and_keeps_time_order(backend, xp_device):
    xp, device = xp_device
    xs = xp.asarray([1.0, 2.0, 3.0], device=device)
    # carry = 10 * carry + x: the digits show the order the steps ran in
    carry, ys = scan(lambda c, x: (10.0 * c + x, c), xp.asarray(0.0, device=device), xs,
                     reverse=True, backend=backend)  # fmt: skip
    assert float(carry) == 321.0
    assert xpnn.to_numpy(ys).tolist() == [32.0, 3.0, 0.0]  # each step's carry in, time order


def test_pytrees_none_first_and_length(backend, xp_device):
    """Carries and xs of tuples, dicts and None; ``carry=None`` hands None to the first
    call only; ``xs=None`` with ``length``."""
    xp, device = xp_device
    a = xp.asarray(np.arange(T * 2.0).reshape(T, 2), dtype=xp.float32, device=device)
    seen = []

    def fn(carry, x):
        seen.append(carry is None)
        total = x["a"] if carry is None else carry[0] + x["a"]
        return (total, {"n": x["b"][0]}), {"sum": total, "pair": (x["b"][1], None)}

    xs = {"a": a, "b": (a + 1.0, 2.0 * a)}
    carry, ys = scan(fn, None, xs, backend=backend)
    assert seen == [True] + [False] * (T - 1)
    np.testing.assert_array_equal(
        xpnn.to_numpy(ys["sum"]), np.cumsum(np.arange(T * 2.0).reshape(T, 2), axis=0)
    )
    np.testing.assert_array_equal(xpnn.to_numpy(ys["pair"][0]), 2.0 * xpnn.to_numpy(a))
    assert ys["pair"][1] is None
    assert float(carry[1]["n"][0]) == 2.0 * (T - 1) + 1.0  # b[T - 1][0] = a[T - 1][0] + 1
    count, ones = scan(lambda c, _: (c + 1.0, c), xp.asarray(0.0, device=device), None,
                       length=4, backend=backend)  # fmt: skip
    assert float(count) == 4.0 and xpnn.to_numpy(ones).tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("grow", "message"),
    [
        (lambda c, xp: xp.concat([c, c], axis=0), r"carry in \(3,\) float.*carry out \(6,\)"),
        (lambda c, xp: xp.astype(c, xp.int32), r"carry in \(3,\) float.*carry out \(3,\) int32"),
        (lambda c, xp: (c, c), r"carry in \(3,\) float.*carry out tuple of \[\(3,\)"),
    ],
)
def test_a_carry_that_changes_is_refused(backend, xp_device, grow, message):
    xp, device = xp_device
    xs = xp.ones((4, 3), device=device)

    def run(xs):
        return scan(lambda c, x: (grow(c + x, xp), x), xp.zeros_like(xs[0, ...]), xs,
                    backend=backend)  # fmt: skip

    with pytest.raises(XpnnValueError, match=message):
        run(xs)
    if backend == "jax":  # the lax.scan path: refused while tracing
        import jax

        with pytest.raises(XpnnValueError, match=message):
            jax.jit(run)(xs)


def test_jax_scan_under_jit_matches_the_loop(backend, xp_device):
    """Traced, ``scan`` is ``lax.scan`` (with ``carry=None`` first step, reverse)."""
    if backend != "jax":
        pytest.skip("jax.jit only")
    import jax

    xp, device = xp_device
    xs = xp.asarray(
        np.random.default_rng(0).normal(size=(T, B, H)), dtype=xp.float32, device=device
    )
    for carry in (None, xp.zeros((B, H), dtype=xp.float32)):
        for reverse in (False, True):

            def fn(c, x):
                return _step(xp.zeros_like(x) if c is None else c, x)

            def run(xs, carry=carry, reverse=reverse, fn=fn):
                return scan(fn, carry, xs, reverse=reverse, backend=backend)

            (c1, y1), (c2, y2) = jax.jit(run)(xs), run(xs)
            np.testing.assert_allclose(xpnn.to_numpy(c1), xpnn.to_numpy(c2), rtol=1e-6)
            np.testing.assert_allclose(xpnn.to_numpy(y1), xpnn.to_numpy(y2), rtol=1e-6)


def test_no_steps_is_refused(backend, xp_device):
    xp, device = xp_device
    with pytest.raises(XpnnValueError, match="at least one step: xs has 0 slices"):
        scan(_step, None, xp.ones((0, 2), device=device), backend=backend)


def test_the_rnn_forward_is_the_hand_written_loop_to_the_bit(backend, device):
    """The driver's forward through ``scan`` against the loop written out here:
    ``ux = xs @ W_in``, ``h_t = tanh(ux_t + h_{t-1} @ W)``, ``y = H @ W_out``."""
    net = xpnn.RNN(2, H, 1, hidden="tanh", output="identity", seed=3, backend=backend,
                   device=device, dtype="float64")  # fmt: skip
    xp, p = net.xp, net.params
    xs = net.asarray(np.random.default_rng(1).normal(size=(T, B, 2)))
    ux = xs @ p["W_in"]
    hs = [xp.tanh(ux[0, ...])]
    for t in range(1, T):
        hs.append(xp.tanh(ux[t, ...] + hs[-1] @ p["W"]))
    v = xp.reshape(xp.concat(hs, axis=0) @ p["W_out"], (T, B, 1))
    ys, cache = net.forward(xs)
    assert _bits(ys) == _bits(v)
    assert [_bits(cache.state_at(t)) for t in range(T)] == [_bits(h) for h in hs]


def _assert_jit_equals_eager(jitted, eager, params, xs, ds) -> None:
    """One step of each from ``params``: new parameters and loss within 1e-12."""
    got, _, loss = jitted(params, {}, xs, ds)
    want, _, eager_loss = eager(params, {}, xs, ds)
    for key in want:
        np.testing.assert_allclose(
            xpnn.to_numpy(got[key]), xpnn.to_numpy(want[key]), rtol=0, atol=1e-12
        )
    assert abs(float(loss) - float(eager_loss)) <= 1e-12


def test_jit_equals_eager_at_200_steps_with_truncation(backend, device):
    """On JAX the jitted step runs the time loops as ``lax.scan``; within 1e-12 of the
    eager step (a Python loop) in float64, LSTM and GRU, truncated BPTT, many-to-one."""
    if backend != "jax":
        pytest.skip("jax.jit only")
    x, d = xpnn.datasets.adding_problem(4, 200, seed=0)
    for cell, truncate in (("lstm", 64), ("gru", None)):
        net = xpnn.RNN(2, 3, 1, cell=cell, output="identity", many_to_one=True, seed=0,
                       backend=backend, device=device, dtype="float64")  # fmt: skip
        xs, ds = net.asarray(x), net.asarray(d)
        jitted = xpnn.make_step(net, xpnn.SGD(0.1), truncate=truncate, compile="on")
        eager = xpnn.make_step(net, xpnn.SGD(0.1), truncate=truncate, compile="off")
        assert jitted.compiled and not eager.compiled
        _assert_jit_equals_eager(jitted, eager, net.params, xs, ds)


def test_truncated_bptt_traces_one_program_for_any_length(backend, device):
    """Many-to-many truncated BPTT on JAX: the whole blocks run as one scan over blocks, so
    the traced step holds as many scans at T 50 as at T 200 (blocks of 7 and a shorter
    last one; one scan per block would be 9 and 30), and the jitted step is within 1e-12
    of the eager one in float64."""
    if backend != "jax":
        pytest.skip("jax.jit only")
    import jax

    scans = {}
    for steps in (50, 200):
        net = xpnn.RNN(2, 3, 1, seed=0, backend=backend, device=device, dtype="float64")
        rng = np.random.default_rng(steps)
        xs = net.asarray(rng.integers(0, 2, size=(steps, 4, 2)).astype(np.float64))
        ds = net.asarray(rng.integers(0, 2, size=(steps, 4, 1)).astype(np.float64))
        jitted = xpnn.make_step(net, xpnn.SGD(0.1), truncate=7, compile="on")
        eager = xpnn.make_step(net, xpnn.SGD(0.1), truncate=7, compile="off")
        scans[steps] = str(jax.make_jaxpr(eager.fn)(net.params, {}, xs, ds)).count("scan[")
        _assert_jit_equals_eager(jitted, eager, net.params, xs, ds)
    assert scans[50] == scans[200] <= 5, scans


def test_the_torch_scan_benchmark_runs_both_forms(backend, capsys, monkeypatch):
    """``benchmarks/torch_scan.py`` (why the scan hook keeps a Python loop on PyTorch) at a
    tiny size: every form gets a row, timed or failed, and the compiled loop computes the
    eager loop's numbers. No time is asserted."""
    if backend != "torch":
        pytest.skip(f"{backend}: the benchmark compares torch.compile's forms")
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import torch_scan

    assert torch_scan.main(["--lengths", "2", "--batches", "1", "--seconds", "0.01"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == len(torch_scan.FORMS)
    loop = rows[0].split("|")
    assert "python loop (inductor)" in loop[3] and float(loop[6]) <= 1e-12
    for row in rows[1:]:
        assert "scan operator" in row and ("fails: " in row or float(row.split("|")[6]) <= 1e-12)
