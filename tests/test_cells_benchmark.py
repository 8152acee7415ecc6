"""benchmarks/cells.py and its roofline: a smoke run at tiny sizes (no timing asserted),
and the flop, byte and transcendental counts against hand counts."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FAST = ["--batch-sizes", "1,2", "--repeats", "1", "--seconds", "0.001", "--threads", "0"]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("cells"), importlib.import_module("roofline")


def test_tiny_run_prints_every_cell_and_the_roofline(bench, capsys) -> None:
    cells, _ = bench
    torch = importlib.util.find_spec("torch") is not None
    backends = "numpy,torch" if torch else "numpy"
    assert cells.main([*FAST, "--backends", backends]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Machine: ") and "load average" in out
    for cell in ("lstm", "gru", "rnn"):
        assert re.search(rf"^\| {cell} xpnn-numpy eager \| [0-9.]+ \| [0-9.]+ \|$", out, re.M)
        row = rf"^\| {cell} \| float(32|64) \| [0-9.e+]+ \| [0-9.e+]+ \| [0-9.e+-]+ \| "
        assert re.search(row + rf"{cell} xpnn-numpy eager \| ", out, re.M)
        if torch:
            assert re.search(rf"^\| {cell} {cells.MODULES[cell]} \| [0-9.]+ \|", out, re.M)
    assert "| rnn | — | — | — | — | ≥3x | not measured |" in out  # no batch 1024 here
    assert re.search(r"^- float64: matmul [0-9.]+ GFLOP/s, copy [0-9.]+ GB/s", out, re.M)


def test_counts_of_the_binary_addition_rnn(bench) -> None:
    _, roofline = bench
    shape = roofline.Shape("rnn", 8, 2, 16, 1, many_to_one=False, dtype="float64")
    # P = W_in 2*16 + W 16*16 + W_out 16*1 = 304. A step forward: 2*(2*16 + 16*16 + 16)
    # = 608 flop; back: dW_in 2*2*16, dW and dh_prev 2 * 2*16*16, dW_out and dh 2 * 2*16
    # = 1152; 8 steps, plus the update 2 * 304 / B.
    assert shape.params == 304
    assert shape.flops(1024) == pytest.approx(8 * (608 + 1152) + 608 / 1024, rel=1e-15)
    # h (16 words) kept and read back, the input (2) read twice; 8 bytes a word
    assert shape.bytes(1024) == pytest.approx((8 * 2 * (16 + 2) + 4 * 304 / 1024) * 8)
    assert shape.transcendentals() == 8 * 16 + 8  # sigmoid state, sigmoid output


def test_counts_of_the_adding_problem_lstm(bench) -> None:
    _, roofline = bench
    shape = roofline.Shape(
        "lstm", 16, 2, 32, 1, many_to_one=True, dtype="float32", bias=True, sigmoid_output=False
    )
    # P = (2 + 32) * 128 + 32 + 128 + 1; 16 steps of 2*(2 + 32)*128 forward and
    # 2*2*128 + 4*32*128 back; the output once: 2*32 forward, 4*32 back
    params = 34 * 128 + 32 + 129
    per_step = 2 * 34 * 128 + 2 * 2 * 128 + 4 * 32 * 128
    assert shape.params == params
    assert shape.flops(4) == pytest.approx(16 * per_step + 6 * 32 + 2 * params / 4)
    assert shape.transcendentals() == 16 * 5 * 32  # four gates and tanh(c); identity output


def test_the_matmuls_are_the_counted_flops_but_the_update(bench) -> None:
    _, roofline = bench
    for shape in (
        roofline.Shape("rnn", 8, 2, 16, 1, many_to_one=False, dtype="float64"),
        roofline.Shape("gru", 16, 2, 32, 1, many_to_one=True, dtype="float32", bias=True),
    ):
        counted = sum(c * 2 * m * k * n for c, m, k, n in shape.matmuls(64)) / 64
        assert counted == pytest.approx(shape.flops(64) - 2 * shape.params / 64, rel=1e-15)


def test_the_floor_is_the_sum_of_the_three(bench) -> None:
    _, roofline = bench
    shape = roofline.Shape("rnn", 8, 2, 16, 1, many_to_one=False, dtype="float64")
    rates = roofline.Peak(flops=1e12, bandwidth=2.0, tanh=4.0)
    floor = rates.floor(shape, 1024, matmul_seconds=3.0)
    assert floor == 3.0 + shape.bytes(1024) / 2.0 + shape.transcendentals() / 4.0
    rows = roofline.roofline_rows(shape, 1024, rates, 3.0, [("x", floor * 2e6)])
    assert rows[0].endswith("| 2.0x |")
