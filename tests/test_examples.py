"""The examples are the runs the command line makes, written out as loops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from selection import selected_backends

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif("numpy" not in selected_backends(), reason="the example runs on numpy")
def test_rnn_sine_example_is_the_run_xpnn_train_sine_makes(tmp_path):
    example = _run([str(ROOT / "examples" / "rnn_sine.py"), "--iters", "300"], tmp_path)
    command = ["-m", "xpnn", "train", "sine", "--iters", "300", "--json"]
    summary = json.loads(_run(command, tmp_path))
    readings = [line.split() for line in example.splitlines() if line.startswith("iters:")]
    losses = {int(i.split(":")[1]): float(v.split(":")[1]) for i, v in readings}
    assert sorted(losses) == [i for i, _ in summary["losses"]] == [0, 100, 200, 299]
    for i, loss in summary["losses"]:
        assert losses[i] == pytest.approx(loss, rel=1e-5)  # printed to 6 digits
    assert f"MSE against the true sine: {summary['generated_mse']:.6g}" in example
    assert f"held-out windows: {summary['test_mse']:.6g}" in example
