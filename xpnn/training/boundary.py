"""What a training run checks where it starts, and how a diverged run ends: shared by
``train`` and ``xpnn.parallel``'s ``train_parallel``, which check the same arguments and
restore the same reading."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xpnn.backends import Array
from xpnn.errors import TrainingDiverged, XpnnError, XpnnTypeError, XpnnValueError, shown


def all_finite(xp: Any, *trees: Mapping[str, Array]) -> bool:
    """Whether every entry of every array in ``trees`` is finite: one sync, however many
    arrays."""
    flags = [xp.all(xp.isfinite(a)) for tree in trees for a in tree.values()]
    return not flags or bool(xp.all(xp.stack(flags)))


def check_stream(model: Any, stream: Any, iters: int, start: Any) -> None:
    """Refuse a stream that is not an xpnn stream or does not fit the model, and a bad
    ``start``; check the first batch through the model's public ``loss`` (shapes, dtype,
    finiteness: one sync, outside the loop)."""
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
        msg = f"start must be an integer from 0 to iters={iters}, got {shown(start)}"
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


def diverged(
    model: Any,
    optimizer: Any,
    clip: float | None,
    good: tuple[int, dict[str, Array], dict[str, Array]],
    iteration: int,
    loss: float,
    history: list[tuple[int, float]],
    *,
    last: bool = False,
) -> TrainingDiverged:
    """Put the last finite reading's parameters back on the model; the exception to raise."""
    good_step, params, state = good
    model.params = params
    if last:
        what = "a parameter or optimiser state is not finite after the last iteration"
    elif math.isfinite(loss):
        what = f"a parameter or optimiser state is not finite at iteration {iteration}"
    else:
        what = f"the loss at iteration {iteration} is {loss}"
    tips = divergence_advice(
        lr=optimizer.lr,
        clip=clip,
        momentum=getattr(optimizer, "momentum", None),
        init=getattr(model, "init", None),
        weight_init_std=getattr(model, "weight_init_std", None),
    )
    msg = (
        f"training diverged: {what}; the parameters were restored to the last finite "
        f"reading. {tips}."
    )
    return TrainingDiverged(
        msg,
        iteration=iteration,
        params=params,
        history=history,
        state=state,
        good_step=good_step,
    )


def divergence_advice(
    *,
    lr: float,
    clip: float | None,
    momentum: float | None = None,
    init: str | None = None,
    weight_init_std: float | None = None,
    can_clip: bool = True,
    flags: bool = False,
) -> str:
    """What to try after a divergence: ``"Try a lower learning rate than 5, ..."``,
    naming the settings as ``train``'s arguments or (``flags``) as the command line's."""

    def name(argument: str, flag: str) -> str:
        return flag if flags else argument

    tips = [f"a lower {name('learning rate', '--lr')} than {lr:g}"]
    if clip is None and can_clip:
        tips.append(name("gradient clipping (clip=1.0)", "--clip 1.0"))
    if momentum is not None:
        tips.append(f"a lower {name('momentum', '--momentum')} than {momentum:g}")
    if init == "std":
        tips.append(name('init="xavier"', "--init xavier"))
    if weight_init_std is not None:
        tips.append(
            f"a smaller {name('weight_init_std', '--weight-init-std')} than {weight_init_std:g}"
        )
    joined = tips[0] if len(tips) == 1 else f"{', '.join(tips[:-1])} or {tips[-1]}"
    return f"Try {joined}"
