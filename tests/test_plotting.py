"""The figures of ``--plot``: drawn without touching the caller's matplotlib backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from xpnn import plotting

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (the plot extra)",
)


def test_running_mean():
    assert plotting.running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert plotting.running_mean([2.0, 4.0, 9.0], 5) == [2.0, 3.0, 5.0]


def test_plots_leave_the_callers_matplotlib_backend_alone(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import matplotlib
        matplotlib.use("pdf")
        from xpnn import plotting
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
