"""The training loop: batches from a stream, one optimiser step per batch, a loss history.

The loop never reads an array value except every ``log_every`` iterations (and at the
last one), where it computes that batch's loss, checks that it is finite and appends it
to the history: on a GPU each such read waits for the device. Data moves to the device a
chunk of iterations at a time, not batch by batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xpnn.backend import Array
from xpnn.datasets import CHUNK
from xpnn.errors import TrainingDiverged, XpnnError, XpnnTypeError, XpnnValueError
from xpnn.nn.model import Model, check_size
from xpnn.nn.rnn import RNN, check_truncate


@dataclass(frozen=True)
class LogEvent:
    """What ``on_log`` receives: the iteration, its batch's loss (before the update), and
    that batch's input ``x``, target ``d`` and output ``y`` (backend arrays)."""

    iteration: int
    loss: float
    x: Array
    d: Array
    y: Array


@dataclass
class TrainResult:
    """The outcome of ``train``: the final parameters (also set on the model), the
    ``(iteration, loss)`` history, the number of iterations run and the wall time."""

    params: dict[str, Array]
    history: list[tuple[int, float]] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0


def clip_by_global_norm(grads: Mapping[str, Array], max_norm: float, xp: Any) -> dict[str, Array]:
    """Scale all gradients by ``min(1, max_norm / ||g||)``, ``||g||`` the norm of all of
    them together. No value is read on the host."""
    total = sum(xp.sum(g * g) for g in grads.values())
    norm = xp.sqrt(total)
    factor = max_norm / xp.maximum(norm, xp.full_like(norm, max_norm))
    return {key: g * factor for key, g in grads.items()}


def _slice(a: Array, axis: int, lo: int, hi: int) -> Array:
    return a[lo:hi, ...] if axis == 0 else a[:, lo:hi, ...]


def train(
    model: Any,
    optimizer: Any,
    stream: Any,
    *,
    iters: int,
    start: int = 0,
    log_every: int = 100,
    truncate: int | None = None,
    clip: float | None = None,
    on_log: Callable[[LogEvent], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    history: list[tuple[int, float]] | None = None,
) -> TrainResult:
    """Train ``model`` in place with ``optimizer`` on batches from ``stream``.

    Parameters
    ----------
    model : MLP or RNN
    optimizer : SGD or Momentum
    stream : a ``datasets`` stream
        ``stream.batches(i, j)`` gives the host data of iterations ``i .. j - 1``.
    iters : int
        The iteration to stop before (a resumed run passes the same ``iters``).
    start : int
        The first iteration (0, or where a checkpoint left off).
    log_every : int
        Iterations between loss readings; iteration 0 and the last are always read.
    truncate : int, optional
        Truncated BPTT block length (RNN only).
    clip : float, optional
        Clip the gradients to this global norm.
    on_log : callable, optional
        Called with a ``LogEvent`` at every reading.
    on_step : callable, optional
        Called with the number of iterations done after each step (checkpoints use it).
    history : list, optional
        The history to continue (a resumed run passes the saved one).

    Raises
    ------
    TrainingDiverged
        A reading found a non-finite loss. The model keeps the parameters of the last
        finite reading; the exception carries them and the history.
    """
    iters, log_every = check_size(iters, "iters"), check_size(log_every, "log_every")
    truncate = _check_train_args(model, optimizer, stream, iters, start, truncate, clip)
    xp, axis, batch = model.xp, model.batch_axis, stream.batch_size
    target_axis = getattr(stream, "target_axis", axis)  # sine: (T, N, 1) inputs, (N, 1) targets
    history = list(history or [])
    params, good_params = model.params, model.params
    began = time.perf_counter()
    lo = start
    while lo < iters:  # one chunk of the stream at a time, cut at the stream's chunk edges
        hi = min(iters, (lo // CHUNK + 1) * CHUNK)
        x_host, d_host = stream.batches(lo, hi)
        x_all, d_all = model.asarray(x_host, name="x"), model.asarray(d_host, name="d")
        for i in range(lo, hi):
            j = i - lo
            x = _slice(x_all, axis, j * batch, (j + 1) * batch)
            d = _slice(d_all, target_axis, j * batch, (j + 1) * batch)
            y, cache = model._forward(x, params)
            if i % log_every == 0 or i == iters - 1:
                loss = float(model._loss_value(cache, d))
                if not math.isfinite(loss):
                    model.params = good_params
                    raise TrainingDiverged(
                        _divergence_message(i, loss, optimizer, clip),
                        iteration=i,
                        params=good_params,
                        history=history,
                    )
                good_params = params
                history.append((i, loss))
                if on_log is not None:
                    on_log(LogEvent(i, loss, x, d, y))
            grads = model._backward(cache, d, truncate)
            if clip is not None:
                grads = clip_by_global_norm(grads, clip, xp)
            params = optimizer.update(params, grads)
            model._params = params
            if on_step is not None:
                on_step(i + 1)
        lo = hi
    model._params = params  # unchecked, as in the loop: a caller's save finds a NaN
    return TrainResult(params, history, iters - start, time.perf_counter() - began)


def _check_train_args(
    model: Any, optimizer: Any, stream: Any, iters: int, start: Any, truncate: Any, clip: Any
) -> int | None:
    """Refuse bad ``train`` arguments before the loop; check the first batch through the
    model's public ``loss`` (shapes, dtype, finiteness: one sync, outside the loop)."""
    if not isinstance(model, Model):
        msg = f"model must be an xpnn MLP or RNN, got {type(model).__name__}"
        raise XpnnTypeError(msg)
    if not callable(getattr(optimizer, "update", None)):
        msg = f"optimizer must have an update(params, grads) method, got {type(optimizer).__name__}"
        raise XpnnTypeError(msg)
    if not callable(getattr(stream, "batches", None)) or not hasattr(stream, "batch_size"):
        msg = f"stream must be an xpnn.datasets stream, got {type(stream).__name__}"
        raise XpnnTypeError(msg)
    stream_axis = getattr(stream, "batch_axis", model.batch_axis)
    if stream_axis != model.batch_axis:
        msg = (
            f"stream has its batch on axis {stream_axis} but {type(model).__name__} takes "
            f"batches on axis {model.batch_axis}; build the stream with "
            f"batch_axis={model.batch_axis}"
        )
        raise XpnnValueError(msg)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= iters:
        msg = f"start must be an integer from 0 to iters={iters}, got {start!r}"
        raise XpnnValueError(msg)
    truncate = check_truncate(truncate)
    if truncate is not None and not isinstance(model, RNN):
        msg = f"truncate applies to an RNN only, got truncate={truncate} for {type(model).__name__}"
        raise XpnnValueError(msg)
    if clip is not None and (
        isinstance(clip, bool)
        or not isinstance(clip, (int, float))
        or not math.isfinite(clip)
        or clip <= 0
    ):
        msg = f"clip must be a positive finite number, got {clip!r}"
        raise XpnnValueError(msg)
    if start < iters:
        try:
            x, d = stream.batches(start, start + 1)
        except XpnnError:
            raise
        except (ValueError, MemoryError) as exc:  # NumPy: "array is too big", or no memory
            msg = (
                f"the stream cannot draw batches of batch_size={stream.batch_size} "
                f"({type(exc).__name__}: {exc}); use a smaller batch_size"
            )
            raise XpnnValueError(msg) from None
        model.loss(model.asarray(x, name="x"), model.asarray(d, name="d"))
    return truncate


def _divergence_message(iteration: int, loss: float, optimizer: Any, clip: float | None) -> str:
    tips = [f"a lower learning rate than {optimizer.lr:g}"]
    if clip is None:
        tips.append("gradient clipping (--clip 1.0)")
    tips.append("another initialiser (xavier or he) or a smaller weight_init_std")
    return (
        f"training diverged: the loss at iteration {iteration} is {loss}; the parameters "
        f"were restored to the last finite reading. Try {', '.join(tips)}."
    )
