"""The examples run as scripts, as a reader runs them, at small sizes; and they are the
runs the command line makes, written out as loops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from selection import selected_backends

from xpnn import cli

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    "numpy" not in selected_backends(), reason="the examples run on numpy"
)
SMALL = {
    "backprop_step.py": [],
    "sgd_regression.py": ["--plot", "loss.png"],
    "rnn_binary_addition.py": ["--iters", "200"],
    "adding_problem_cells.py": [
        *("--steps", "5", "--cells", "rnn,gru", "--seeds", "1", "--iters", "5"),
        *("--plot", "adding.png", "--json", "adding.json"),
    ],
}
"""Each example and the options that make it small; a figure it can write is written.
rnn_sine.py runs beside ``xpnn train sine`` below."""


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_run_here():
    run = [*SMALL, "rnn_sine.py"]
    assert sorted(run) == sorted(p.name for p in (ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("example", list(SMALL))
def test_the_example_runs_as_a_script(example, tmp_path):
    pytest.importorskip("matplotlib", reason="the examples draw their figures (the plot extra)")
    _run([str(ROOT / "examples" / example), *SMALL[example]], tmp_path)
    for name in (a for a in SMALL[example] if a.endswith(".png")):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_rnn_sine_example_is_the_run_xpnn_train_sine_makes(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the example draws its figure (the plot extra)")
    args = [str(ROOT / "examples" / "rnn_sine.py"), "--iters", "300", "--plot", "sine.png"]
    example = _run(args, tmp_path)
    assert (tmp_path / "sine.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["train", "sine", "--iters", "300", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    readings = [line.split() for line in example.splitlines() if line.startswith("iters:")]
    losses = {int(i.split(":")[1]): float(v.split(":")[1]) for i, v in readings}
    assert sorted(losses) == [i for i, _ in summary["losses"]] == [0, 100, 200, 299]
    for i, loss in summary["losses"]:
        assert losses[i] == pytest.approx(loss, rel=1e-5)  # printed to 6 digits
    assert f"MSE against the true sine: {summary['generated_mse']:.6g}" in example
    assert f"held-out windows: {summary['test_mse']:.6g}" in example
