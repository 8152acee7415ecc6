"""benchmarks/gpu.py --dry-run: every code path of the GPU script on NumPy stand-ins, in
seconds, so that the script runs the day a GPU is at hand (no timing asserted). Each test
runs once, in one session."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import pytest
from selection import selected_backends

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _in_session(backend: str) -> None:
    """Run the test once, in the session of ``backend``."""
    if backend not in selected_backends():
        pytest.skip(f"runs in the {backend} session (XPNN_BACKENDS={backend})")


def test_dry_run_writes_the_table_and_the_targets(monkeypatch, tmp_path, capsys) -> None:
    _in_session("torch")  # where the torch stand-ins (cuDNN, torch compile) run too
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    gpu = importlib.import_module("gpu")
    assert gpu.main(["--dry-run", "--out", str(tmp_path / "table")]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "table.md").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "table.json").read_text(encoding="utf-8"))
    assert md in printed and "DRY RUN" in md
    # agreement: array-api-strict against NumPy on every run of xpnn agree
    assert {row["run"] for row in data["agreement"]} == set(gpu.RUNS)
    # every cell, implementation and batch has a row; each timed or saying why not
    torch = importlib.util.find_spec("torch") is not None
    expected = {(c, p, b) for c in gpu.CELLS for p, _ in gpu.paths() for b in (2, 4, 8)}
    got = {(r["cell"], r["path"], r["batch"]) for r in data["rows"]}
    assert expected <= got
    for row in data["rows"]:
        if row["path"] in ("cuDNN", "torch compile") and not torch:  # stand-ins need torch
            assert row["us"] is None and row["note"]
        else:
            assert row["us"] > 0, row
    assert ("lstm", "cupy fuse gates (fwd only)", 8) in got
    assert len(data["targets"]) == 2 * len(gpu.CELLS)
    assert md.rstrip().endswith(data["targets"][-1])


def test_the_targets_are_read_from_the_rows(monkeypatch) -> None:
    _in_session("numpy")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    gpu = importlib.import_module("gpu")
    sizes = {"batches": (64, 1024, 16384), "hidden": 512}
    rows = [
        gpu.Row("lstm", "cupy eager", 1024, 10.0),
        gpu.Row("lstm", "jax jit", 1024, 4.0),
        gpu.Row("lstm", "cuDNN", 1024, 5.0),
        gpu.Row("lstm", "cupy graph", 16384, 1.0),
        gpu.Row("lstm", "numpy eager (cpu)", 16384, 19.0),
    ]
    lines = gpu.targets_lines(rows, sizes)
    assert "lstm: at least cuDNN at batch 1024: met, 1.25x" in lines
    assert "lstm: at least 20x NumPy at hidden 512, batch 16384: not met, 19.0x" in lines
    assert "gru: at least cuDNN at batch 1024: not measured" in lines
