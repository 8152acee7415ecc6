"""Gradient check: a model's ``backward`` against central differences of its loss.

The numerical derivative is the fourth-order five-point stencil
``(8 (L(p + h) - L(p - h)) - (L(p + 2h) - L(p - 2h))) / (12 h)``, one parameter entry at a
time, with perturbed copies of the parameters (nothing is written in place, so it works
on every backend). For truncated BPTT the loss differentiated is the one the truncated
gradient is exact for: each block of ``truncate`` steps starts from the state the
unperturbed network reached, held constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from xpnn.backends import Array
from xpnn.errors import XpnnTypeError, XpnnValueError, shown
from xpnn.nn.core import Core
from xpnn.nn.model import Model
from xpnn.nn.rnn import RNN, check_truncate


def gradient_check(
    model: Any, x: Array, d: Array, *, truncate: int | None = None, h: float = 1e-4
) -> dict[str, float]:
    """Compare ``model``'s analytic gradients with numerical ones.

    Parameters
    ----------
    model : MLP or RNN
        A float64 model; its ``params`` are not changed.
    x, d : Array
        Inputs and targets, as for ``model.loss_and_grad``.
    truncate : int, optional
        RNN only: check truncated BPTT over blocks of this many steps.
    h : float
        The finite-difference step.

    Returns
    -------
    dict of str to float
        For each parameter, ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``:
        the largest error relative to the largest entry of that parameter's gradient
        (0.0 where both gradients are exactly zero).
    """
    if not isinstance(model, Model):
        msg = f"model must be an xpnn MLP or RNN, got {type(model).__name__}"
        raise XpnnTypeError(msg, argument="model")
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h < 1:
        msg = f"h must be a finite-difference step in (0, 1), got {shown(h)}"
        raise XpnnValueError(msg, argument="h")
    xp = model.xp
    if model.dtype != xp.float64:
        msg = f"gradient checks need a float64 model, got {model.dtype}"
        raise XpnnTypeError(msg, argument="model")
    if isinstance(model, RNN):
        _, grads = model.loss_and_grad(x, d, truncate=truncate)  # checks x, d and truncate
        loss = _rnn_loss(
            model.core, x, model.core.targets(d), check_truncate(truncate), model.params
        )
    else:
        if truncate is not None:
            msg = "truncate applies to an RNN only"
            raise XpnnValueError(msg, argument="truncate")
        _, grads = model.loss_and_grad(x, d)  # checks x and d
        d = model.core.targets(d)

        def loss(params: Mapping[str, Array]) -> Array:
            return _loss(model.core, x, d, params)

    errors = {}
    for key, analytic in grads.items():
        numeric = _numerical_gradient(loss, model.params, key, h, model)
        scale = xp.maximum(xp.max(xp.abs(analytic)), xp.max(xp.abs(numeric)))
        err = xp.max(xp.abs(analytic - numeric))
        errors[key] = float(err / scale) if float(scale) > 0 else float(err)
    return errors


def _numerical_gradient(
    loss: Callable[[Mapping[str, Array]], Array],
    params: Mapping[str, Array],
    key: str,
    h: float,
    model: Any,
) -> Array:
    """``dL/dparams[key]`` by the five-point stencil, shaped like ``params[key]``."""
    xp, p = model.xp, params[key]
    size = math.prod(p.shape)
    positions = xp.arange(size, device=model.device)
    derivatives = []
    for i in range(size):
        unit = xp.reshape(xp.astype(positions == i, p.dtype), p.shape)
        loss_at = {k: loss({**params, key: p + (k * h) * unit}) for k in (-2, -1, 1, 2)}
        # differences first, so that a loss the entry does not touch gives exactly 0
        derivatives.append(
            (8.0 * (loss_at[1] - loss_at[-1]) - (loss_at[2] - loss_at[-2])) / (12.0 * h)
        )
    return xp.reshape(xp.stack(derivatives), p.shape)


def _rnn_loss(
    core: Core, xs: Array, ds: Array, truncate: int | None, params0: Mapping[str, Array]
) -> Callable[[Mapping[str, Array]], Array]:
    """The RNN loss as a function of the parameters, block-wise under truncation (each
    block from the state ``params0`` reached)."""
    steps = xs.shape[0]
    if truncate is None or truncate >= steps:
        return lambda params: _loss(core, xs, ds, params)
    _, cache = core.forward(params0, xs)
    starts = list(range(0, steps, truncate))
    if core.many_to_one:  # only the last block holds an output
        starts = starts[-1:]

    def loss(params: Mapping[str, Array]) -> Array:
        total = 0.0
        for start in starts:
            stop = min(start + truncate, steps)
            h0 = cache.state_at(start - 1) if start > 0 else None
            target = ds if core.many_to_one else ds[start:stop, ...]
            total = total + _loss(core, xs[start:stop, ...], target, params, h0)
        return total

    return loss


def _loss(core: Core, x: Array, d: Array, params: Mapping[str, Array], h0: Any = None) -> Array:
    """The loss of ``x`` against floating targets ``d`` with ``params``, through the
    model's core (``x`` and ``d`` were checked by ``loss_and_grad``)."""
    return core.loss(core.forward(params, x, h0)[1], d)
