"""Figures for ``--plot``: the loss curve and the sine wave. Needs the ``plot`` extra.

The figures are ``matplotlib.figure.Figure`` objects drawn on their own canvas: the
matplotlib backend of the calling program (``matplotlib.use``, pyplot's figures) is left
alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xpnn.errors import XpnnValueError
from xpnn.io.atomic import write_bytes_atomic

SMOOTH_MIN = 20  # fewer loss readings than this are drawn as they are, unsmoothed
FIGURE_FIELDS = (
    ("init", "init"),
    ("steps", "T"),
    ("maxlen", "maxlen"),
    ("bits", "bits"),
    ("hidden_size", "hidden"),
)
"""The settings a run's title names after its cell, with their labels."""
SMOOTH_FRACTION = 0.05  # the smoothing window reaches this share of the readings each way


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
    write_bytes_atomic(path, buffer.getvalue(), what="the plot")


def smoothed(values: Sequence[float], min_readings: int = SMOOTH_MIN) -> list[float] | None:
    """The loss readings smoothed, or None when there are fewer than ``min_readings``.

    Each reading becomes the geometric mean (the mean in log space; the arithmetic mean
    where a value is not positive) of a window centred on it: ``SMOOTH_FRACTION`` of the
    readings on each side, narrowing at both ends to what is there, so the first and last
    values are the first and last readings. A centred window follows a steady fall in
    the log of the loss exactly and lags nowhere; a running mean lags behind a falling
    loss, and its first readings dominate a short curve.
    """
    n = len(values)
    if n < min_readings:
        return None
    logs = all(v > 0 for v in values)
    ys = [math.log(v) for v in values] if logs else [float(v) for v in values]
    half = max(1, round(SMOOTH_FRACTION * n))
    out = []
    for i in range(n):
        k = min(half, i, n - 1 - i)
        mean = math.fsum(ys[i - k : i + k + 1]) / (2 * k + 1)
        out.append(math.exp(mean) if logs else mean)
    return out


def loss_curve(
    history: Sequence[tuple[int, float]],
    path: str | Path,
    title: str,
    *,
    baseline: tuple[float, str] | None = None,
    final: tuple[float, str] | None = None,
    ylabel: str = "loss",
) -> None:
    """The ``(iteration, loss)`` readings and, from ``SMOOTH_MIN`` readings on, their
    smoothed curve (``smoothed``), on a log-scale loss axis, as a PNG. ``baseline``
    (value, label) draws a dashed level to beat; ``final`` (value, label) marks a loss
    measured on a fixed set after the last iteration."""
    steps, losses = [i for i, _ in history], [v for _, v in history]
    fig = new_figure(7, 4)
    ax = fig.subplots()
    curve = smoothed(losses)
    few = curve is None
    ax.plot(
        steps,
        losses,
        color="C0" if few else "0.7",
        linewidth=1.2 if few else 0.8,
        marker="o" if few else None,
        markersize=3,
        label="loss of the batch at each reading",
    )
    if curve is not None:
        k = max(1, round(SMOOTH_FRACTION * len(losses)))
        ax.plot(steps, curve, color="C0", label=f"smoothed (centred over {2 * k + 1} readings)")
    if baseline is not None:
        ax.axhline(baseline[0], color="C3", linestyle="--", linewidth=1, label=baseline[1])
    if final is not None:
        ax.plot([steps[-1]], [final[0]], "D", color="C2", label=final[1])
    if all(v > 0 for v in losses):
        ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    ax.title.set_fontsize("medium")
    ax.legend(fontsize="small")
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
    """The wave ``f = sin(t)``, the held-out predictions, the generated continuation and
    beside it the true one (``sin(t_gen)``) as a PNG, the legend below the axes so it
    covers no curve."""
    fig = new_figure(9, 4.2)
    ax = fig.subplots()
    ax.plot(t, f, color="0.6", label="sin(t): training windows, the last 100 held out")
    ax.plot(t_test, test_pred, ".", markersize=3, label="one step ahead on held-out windows")
    ax.plot(
        t_gen,
        [math.sin(v) for v in t_gen],
        color="0.6",
        linestyle="--",
        label="true continuation",
    )
    ax.plot(t_gen, generated, color="C3", label="generated from its own predictions")
    ax.axvline(t[-1], color="0.3", linewidth=0.6)
    ax.set(xlabel="t", ylabel="value", title=title)
    ax.title.set_fontsize("medium")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize="small")
    save(fig, path)


def run_title(settings: Any, run: str | None = None) -> str:
    """What names a ``xpnn train`` run (an ``xpnn.course.settings`` object) among others:
    the run, cell, activation, sequence length, optimiser, lr, iterations and batch,
    backend, dtype and seed; only those the run has. ``run``: the command's name, where
    it is not the settings' ``RUN`` (``sine-wave``)."""
    s = settings
    what = []
    if hasattr(s, "cell"):
        # the adding problem's --model names its network; neither it nor --cell: lstm
        cell = getattr(s, "model", None) or s.cell or "lstm"
        rnn_activation = cell == "rnn" and hasattr(s, "activation")
        what.append(cell + (f" ({s.activation})" if rnn_activation else ""))
    elif hasattr(s, "activation"):
        what.append(s.activation)
    what += [f"{label} {getattr(s, k)}" for k, label in FIGURE_FIELDS if hasattr(s, k)]
    optimizer = type(s.make_optimizer()).__name__
    how = f"{optimizer} lr {s.lr:g}, {s.iters} iters x batch {s.batch_size}"
    return (
        f"xpnn train {run or s.RUN}: {', '.join(what)}\n{how}, {s.backend} {s.dtype}, seed {s.seed}"
    )


def run_figure(settings: Any, result: Any, path: str | Path, run: str | None = None) -> None:
    """The figure of one ``xpnn train`` run (``settings`` and its ``RunResult``): the sine
    runs' wave and continuation, every other run's loss curve with the level to beat
    (always predicting 1 on the adding problem, the mean on the regression) and the loss
    on the fixed set where the run measures one (binary addition: every operand pair).
    ``run`` names the command in the title (see ``run_title``)."""
    from xpnn import datasets

    title = run_title(settings, run)
    metrics = result.metrics
    if "generated" in metrics:
        data = datasets.sine_windows(settings.maxlen)
        step = float(data.t[1] - data.t[0])
        n_test = data.ds_test.shape[0]
        t_gen = [float(data.t[-1]) + step * k for k in range(1, len(metrics["generated"]) + 1)]
        sine_figure(
            data.t,
            data.f,
            data.t[-n_test:],
            metrics["test_pred"],
            t_gen,
            metrics["generated"],
            path,
            title=title,
        )
        return
    # The training loss is half the squared error (the course's mean_squared_error), so
    # a constant prediction's loss is half its test MSE: drawn there, labelled with the
    # MSE the terminal prints.
    baseline = final = None
    ylabel = "loss"
    if "baseline_mse" in metrics:
        mse = metrics["baseline_mse"]
        baseline = (mse / 2, f"always predicting 1 (test set): MSE {mse:.4g}")
    elif "target_variance" in metrics:
        mse = metrics["target_variance"]
        baseline = (mse / 2, f"always predicting the mean (test set): MSE {mse:.4g}")
    if "eval_loss" in metrics:
        final = (
            metrics["eval_loss"],
            f"at the end, on all {metrics['total']} pairs: loss {metrics['eval_loss']:.3g}",
        )
    elif "test_mse" in metrics:
        mse = metrics["test_mse"]
        digits = ".4g" if "baseline_mse" in metrics else ".6g"  # as the terminal prints it
        final = (mse / 2, f"at the end, on the test set: MSE {mse:{digits}}")
    if baseline is not None or "test_mse" in metrics:
        ylabel = "loss = MSE / 2 (the course's mean_squared_error)"
    loss_curve(result.train.history, path, title, baseline=baseline, final=final, ylabel=ylabel)
