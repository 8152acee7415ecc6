"""Figures for ``--plot``: the loss curve and the sine wave. Needs the ``plot`` extra."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xpnn.errors import XpnnValueError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = 'plotting needs matplotlib: pip install "xpnn[plot]"'
        raise XpnnValueError(msg) from None
    return plt


def _save(fig, path: str | Path) -> None:
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        msg = f"cannot write the plot to {str(path)!r}: {exc.strerror or exc}"
        raise XpnnValueError(msg) from None
    except ValueError as exc:  # a file suffix matplotlib has no writer for
        msg = f"cannot write the plot to {str(path)!r}: {exc}"
        raise XpnnValueError(msg) from None


def loss_curve(history: Sequence[tuple[int, float]], path: str | Path, title: str) -> None:
    """The ``(iteration, loss)`` history as a PNG line plot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([i for i, _ in history], [v for _, v in history], label="loss")
    ax.set(xlabel="iteration", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def sine_figure(t, f, t_test, test_pred, t_gen, generated, path: str | Path) -> None:
    """The wave, the held-out predictions and the generated continuation as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, f, color="0.6", label="sin(t)")
    ax.plot(t_test, test_pred, ".", markersize=3, label="prediction (held-out windows)")
    ax.plot(t_gen, generated, label="generated from its own predictions")
    ax.set(xlabel="t", ylabel="value", title="RNN on a sine wave (notebook 3_3)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
