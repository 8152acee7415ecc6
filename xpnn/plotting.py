"""Figures for ``--plot``: the loss curve and the sine wave. Needs the ``plot`` extra.

The figures are ``matplotlib.figure.Figure`` objects drawn on their own canvas: the
matplotlib backend of the calling program (``matplotlib.use``, pyplot's figures) is left
alone.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xpnn.errors import OutputError, XpnnValueError

RUNNING_MEAN = 20  # readings averaged by the loss curve's running mean


def new_figure(width: float, height: float) -> Any:
    """A ``matplotlib.figure.Figure`` of ``width`` x ``height`` inches, on its own canvas
    (pyplot and the matplotlib backend are not touched)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        msg = 'plotting needs matplotlib: pip install "xpnn[plot]"'
        raise XpnnValueError(msg) from None
    return Figure(figsize=(width, height), layout="tight")


def save(fig: Any, path: str | Path) -> None:
    """Write ``fig`` to ``path`` whole or not at all (its suffix names the format; PNG
    without one).

    Raises
    ------
    XpnnValueError
        A suffix matplotlib has no writer for.
    OutputError
        The file cannot be written (a read-only folder, a full disk, a folder at
        ``path``); nothing is left at ``path``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix[1:].lower() or "png", dpi=120)
    except ValueError as exc:  # a file suffix matplotlib has no writer for
        msg = f"cannot write the plot to {str(path)!r}: {exc}"
        raise XpnnValueError(msg) from None
    _write_output(path, buffer.getvalue())


def _write_output(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader sees the old file or the whole new one, never a part. On failure the
    temporary file is removed and an ``OutputError`` names the path and the cause."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        msg = f"cannot write {str(path)!r}: {exc.strerror or exc}"
        raise OutputError(msg) from None


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and up to ``window - 1`` values before it."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_curve(history: Sequence[tuple[int, float]], path: str | Path, title: str) -> None:
    """The ``(iteration, loss)`` readings and their running mean over ``RUNNING_MEAN``
    readings, on a log-scale loss axis, as a PNG."""
    steps, losses = [i for i, _ in history], [v for _, v in history]
    fig = new_figure(7, 4)
    ax = fig.subplots()
    ax.plot(steps, losses, color="0.75", linewidth=0.8, label="loss at each reading")
    ax.plot(
        steps,
        running_mean(losses, RUNNING_MEAN),
        color="C0",
        label=f"running mean over {RUNNING_MEAN} readings",
    )
    if all(v > 0 for v in losses):
        ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel="loss", title=title)
    ax.title.set_fontsize("medium")
    ax.legend()
    save(fig, path)


def sine_figure(
    t: Any,
    f: Any,
    t_test: Any,
    test_pred: Any,
    t_gen: Any,
    generated: Any,
    path: str | Path,
    title: str = "RNN on a sine wave (notebook 3_3)",
) -> None:
    """The wave, the held-out predictions and the generated continuation as a PNG, the
    legend outside the axes so it covers no curve."""
    fig = new_figure(10, 4)
    ax = fig.subplots()
    ax.plot(t, f, color="0.6", label="sin(t)")
    ax.plot(t_test, test_pred, ".", markersize=3, label="prediction (held-out windows)")
    ax.plot(t_gen, generated, label="generated from its own predictions")
    ax.set(xlabel="t", ylabel="value", title=title)
    ax.title.set_fontsize("medium")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    save(fig, path)
