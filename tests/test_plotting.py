"""The figures of ``--plot``: drawn without touching the caller's matplotlib backend, the
loss smoothed without lag, the test MSE labelled as the terminal prints it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap

import pytest

from xpnn import cli
from xpnn.cli import plotting

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the plot extra)",
)


def test_a_short_run_is_drawn_unsmoothed_and_ends_at_its_last_reading():
    # xpnn train regression --plot: 11 readings falling from 6 to 1e-4. A running mean
    # over 20 readings ended near 0.6 here: the first loss dominated it.
    readings = [6.0 * (1e-4 / 6.0) ** (k / 10) for k in range(11)]
    assert plotting.smoothed(readings) is None  # fewer than SMOOTH_MIN: drawn as they are
    forced = plotting.smoothed(readings, min_readings=1)
    assert forced[0] == pytest.approx(6.0) and forced[-1] == pytest.approx(1e-4)
    assert forced == pytest.approx(readings)  # a steady fall in log space is kept


def test_the_smoother_follows_a_long_steady_fall_without_lag():
    readings = [10.0 * 0.95**k for k in range(200)]
    assert plotting.smoothed(readings) == pytest.approx(readings, rel=1e-12)


def test_the_smoother_averages_noise_in_log_space_inside_the_curve():
    readings = [1.0 if k % 2 == 0 else 4.0 for k in range(200)]
    curve = plotting.smoothed(readings)
    half = round(plotting.SMOOTH_FRACTION * 200)  # 10: 21 readings around the middle
    assert half == 10
    assert curve[100] == pytest.approx(4.0 ** (10 / 21))  # 11 ones and 10 fours
    assert curve[0] == 1.0 and curve[-1] == 4.0  # the window narrows to the end reading
    assert curve[1] == pytest.approx(4.0 ** (1 / 3))  # readings 0, 1, 2: 1, 4, 1


def test_a_loss_that_reaches_zero_is_smoothed_on_a_linear_scale():
    readings = [float(k % 3) for k in range(60)]  # 0, 1, 2, 0, 1, 2, ...
    curve = plotting.smoothed(readings)
    assert curve[30] == pytest.approx(6 / 7)  # 3 readings each way: 0, 1, 2, 0, 1, 2, 0
    assert curve[-1] == readings[-1]


def test_plots_leave_the_callers_matplotlib_backend_alone(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import matplotlib
        matplotlib.use("pdf")
        from xpnn.cli import plotting
        plotting.loss_curve([(0, 1.0), (10, 0.5), (20, 0.25)], r"{tmp_path / "loss.png"}", "t")
        plotting.sine_figure([0, 1], [0, 1], [1], [1], [2], [0.5], r"{tmp_path / "sine.png"}")
        assert matplotlib.get_backend() == "pdf", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for name in ("loss.png", "sine.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv",
    [
        ["regression", "--iters", "30"],
        ["adding-problem", "--steps", "4", "--iters", "5", "--hidden-size", "3", "--n-test", "50"],
    ],
    ids=lambda argv: argv[0],
)
def test_the_figure_labels_the_test_mse_the_terminal_prints(argv, tmp_path, capsys, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: figures.append(fig))
    assert cli.main(["train", *argv, "--quiet", "--plot", str(tmp_path / "figure.png")]) == 0
    (line,) = [s for s in capsys.readouterr().out.splitlines() if s.startswith("test MSE on")]
    printed = re.match(r"test MSE on [^:]+: (\S+) ", line)[1]
    (figure,) = figures
    legend = [text.get_text() for ax in figure.axes for text in ax.get_legend().get_texts()]
    assert any(f"test set: MSE {printed}" in text for text in legend), (line, legend)
