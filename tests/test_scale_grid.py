"""benchmarks/rnn_scale_grid.py: a smoke run on a tiny grid (no timing asserted), and the
check that its implementations compute the same training step. Each test runs once, in
the session of the backend it exercises."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from selection import selected_backends

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = ["--batches", "1", "--hidden", "16", "--lengths", "8", "--backends", "numpy"]
FAST = ["--seconds", "0.001", "--repeats", "1", "--threads", "0"]  # 0: no re-exec


def _in_session(backend: str) -> None:
    """Run the test once, in the session of ``backend`` (the one it exercises)."""
    if backend not in selected_backends():
        pytest.skip(f"runs in the {backend} session (XPNN_BACKENDS={backend})")


@pytest.fixture
def grid(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("rnn_scale_grid")


def test_tiny_grid_prints_every_table(grid, capsys: pytest.CaptureFixture[str]) -> None:
    _in_session("numpy")
    assert grid.main([*TINY, *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Machine: ")
    assert "### T 8, hidden 16: µs per sequence" in out
    assert re.search(r"^\| xpnn-numpy eager \| [0-9.]+ \|$", out, re.MULTILINE)
    # the summary row: T, hidden, batch, GFLOP, the fastest path and its µs; no torch here
    summary = r"^\| 8 \| 16 \| 1 \| [0-9.e+-]+ \| xpnn-numpy eager \| [0-9.]+ \| — \| — \| "
    assert re.search(summary + r"≥10x vs torch autograd: not measured \|$", out, re.MULTILINE)
    assert "(no compiled path in this run)" in out


def test_a_cell_over_budget_says_so(grid, capsys: pytest.CaptureFixture[str]) -> None:
    _in_session("numpy")
    grid.main([*TINY, *FAST, "--max-gflop", "1e-6"])
    out = capsys.readouterr().out
    # 6 * T * B * H * (I + H + O) = 6 * 8 * 1 * 16 * 19 = 14592 FLOP
    assert "| xpnn-numpy eager | skipped: over budget (1.46e-05 GFLOP/step) |" in out


def test_a_slow_compile_skips_the_others_at_that_length(grid, capsys) -> None:
    _in_session("jax")
    pytest.importorskip("jax", reason="jax is not installed: no compiled path to time")
    tiny = ["--batches", "1,2", "--hidden", "16", "--lengths", "8", "--backends", "jax"]
    grid.main([*tiny, *FAST, "--compile-budget", "0"])
    out = capsys.readouterr().out
    # batch 1 compiles (over the budget of 0 s) and is timed; batch 2 is not built
    skipped = r"skipped: compile [0-9]+ s at T 8 > --compile-budget 0 s"
    assert re.search(rf"^\| xpnn-jax jit \| [0-9.]+ \| {skipped} \|$", out, re.MULTILINE)
    assert re.search(r"^\| xpnn-jax jit \| 8 \| 16 \| 1 \| [0-9.]+ \|$", out, re.MULTILINE)


def test_every_implementation_takes_the_same_step(grid) -> None:
    """One SGD step from the same weights on the same batch: the same loss and the same
    updated weights from xpnn (its own backward) and from torch's autograd, both ways."""
    _in_session("torch")
    pytest.importorskip("torch", reason="torch is not installed: no torch implementations")
    runners = importlib.import_module("_runners")
    hidden, (x, d) = 5, grid.make_batches(3, 4)[0]
    net = grid.make_net(hidden, "numpy", None, "float64")
    init = {k: np.array(v) for k, v in net.params.items()}
    ours = runners.XpnnModel(net, grid.SGD(grid.LR), "off")
    theirs = [
        runners.TorchAutogradRNN(init, "tanh", grid.LR, None, "float64"),
        runners.TorchModuleRNN(init, grid.LR, None, "float64"),
    ]
    loss = float(ours.step(x, d))
    for model in theirs:
        assert float(model.step(model.to_device(x), model.to_device(d))) == pytest.approx(
            loss, rel=1e-12
        )
    auto, module = theirs
    for key, value in ours.params.items():
        np.testing.assert_allclose(auto.params[key].detach().numpy(), value, rtol=1e-10)
    theirs = {
        "W_in": module.rnn.weight_ih_l0.T,
        "W": module.rnn.weight_hh_l0.T,
        "b": module.rnn.bias_ih_l0,
        "W_out": module.linear.weight.T,
        "b_out": module.linear.bias,
    }
    for key, value in theirs.items():
        np.testing.assert_allclose(value.detach().numpy(), ours.params[key], rtol=1e-10)
    # torch.nn.RNN's second bias (zero at first) takes the same gradient step as b
    step_b = ours.params["b"] - init["b"]
    np.testing.assert_allclose(module.rnn.bias_hh_l0.detach().numpy(), step_b, rtol=1e-10)
