"""``make_step``: the one definition of a training step.

A step is a pure function ``params, state, loss = step(params, state, x, d)``: forward,
backward (full or truncated BPTT), optional clipping by global norm, the optimiser's
update, and the batch loss as a 0-D array computed before the update. It checks nothing,
reads no value on the host and keeps no Python-side state, so ``jax.jit`` and
``torch.compile`` can compile it (``compile=``); ``train`` checks its input once, at the
boundary, and then calls the step in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xpnn.backends import Array, ArrayNamespace, check_compile, compile_loop, compile_step
from xpnn.checks import check_positive
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.nn.model import Model
from xpnn.nn.rnn import RNN, check_truncate
from xpnn.optim import Optimizer

StepFn = Callable[[dict, dict, Array, Array], tuple[dict, dict, Array]]


def clip_by_global_norm(
    grads: Mapping[str, Array], max_norm: float, xp: ArrayNamespace
) -> dict[str, Array]:
    """Scale all gradients by ``min(1, max_norm / ||g||)``, ``||g||`` the norm of all of
    them together. No value is read on the host."""
    total = sum(xp.sum(g * g) for g in grads.values())
    norm = xp.sqrt(total)
    factor = max_norm / xp.maximum(norm, xp.full_like(norm, max_norm))
    return {key: g * factor for key, g in grads.items()}


class Step:
    """A training step: call it as ``params, state, loss = step(params, state, x, d)``.

    Attributes
    ----------
    compiled : bool
        Whether the step runs compiled (``jax.jit`` or ``torch.compile``).
    fn : callable
        The uncompiled step (what a compiler traces).
    backend : str
        The model's backend.
    """

    def __init__(self, fn: StepFn, run: StepFn, compiled: bool, backend: str) -> None:
        self.fn, self._run, self.compiled, self.backend = fn, run, compiled, backend
        self._loops: dict[tuple[int, int, int], Any] = {}

    def __call__(
        self, params: dict[str, Array], state: dict[str, Array], x: Array, d: Array
    ) -> tuple[dict[str, Array], dict[str, Array], Array]:
        return self._run(params, state, x, d)

    def loop(self, rows: int, axis: int, target_axis: int) -> Any:
        """The step run over many iterations in one compiled call (``backend.compile_loop``:
        compiled JAX steps only, else None), made once per batch layout and kept."""
        if not self.compiled:
            return None
        key = (rows, axis, target_axis)
        if key not in self._loops:
            self._loops[key] = compile_loop(
                self.fn, self.backend, rows=rows, axis=axis, target_axis=target_axis
            )
        return self._loops[key]


def make_step(
    model: Model,
    optimizer: Optimizer,
    *,
    truncate: int | None = None,
    clip: float | None = None,
    compile: str = "auto",
    steps: int | None = None,
) -> Step:
    """The training step of ``model`` with ``optimizer``.

    Parameters
    ----------
    model : MLP or RNN
        Supplies the math (its unchecked ``_forward``, ``_loss_value``, ``_backward``); the
        step does not read or set ``model.params``.
    optimizer : SGD, Momentum, AdaGrad, RMSProp or Adam
    truncate : int, optional
        Truncated BPTT block length (RNN only).
    clip : float, optional
        Clip the gradients to this global norm before the update.
    compile : {"auto", "on", "off"}
        ``"on"`` compiles (JAX, PyTorch) or raises; ``"auto"`` compiles on JAX (an RNN's
        time loop is one ``lax.scan``: the compile time does not grow with ``T``), and on
        PyTorch for runs of at least ``backend.AUTO_TORCH_STEPS`` steps.
    steps : int, optional
        How many steps the caller means to run (``"auto"`` uses it on PyTorch).

    Returns
    -------
    Step
        ``step(params, state, x, d) -> (params, state, loss)``: ``x`` and ``d`` a batch as
        the model's ``_forward`` and loss take them (``x`` ``(B, n_in)`` or ``(T, B, I)``;
        ``d`` floating targets), ``loss`` 0-D, the batch's loss before the update.

    Raises
    ------
    XpnnTypeError, XpnnValueError
        A bad model, optimiser, ``truncate``, ``clip`` or ``compile``.
    """
    check_step_args(model, optimizer, truncate, clip)
    check_compile(compile)
    truncate = check_truncate(truncate)
    xp = model.xp

    def step(params, state, x, d):
        _y, cache = model._forward(x, params)
        loss = model._loss_value(cache, d)
        grads = model._backward(cache, d, truncate)
        if clip is not None:
            grads = clip_by_global_norm(grads, clip, xp)
        params, state = optimizer.apply(params, grads, state, xp=xp)
        return params, state, loss

    run, compiled = compile_step(step, model.backend, compile, device=model.device, steps=steps)
    return Step(step, run, compiled, model.backend)


def check_step_args(model: Any, optimizer: Any, truncate: Any, clip: Any) -> None:
    """Refuse a model that is not an xpnn model, an optimiser that is not an xpnn
    optimiser, ``truncate`` for a non-RNN, and a ``clip`` that is not positive and finite."""
    if not isinstance(model, Model):
        msg = f"model must be an xpnn MLP or RNN, got {type(model).__name__}"
        raise XpnnTypeError(msg)
    if not isinstance(optimizer, Optimizer):
        msg = (
            "optimizer must be an xpnn optimiser (SGD, Momentum, AdaGrad, RMSProp, Adam), "
            f"got {type(optimizer).__name__}"
        )
        raise XpnnTypeError(msg)
    truncate = check_truncate(truncate)
    if truncate is not None and not isinstance(model, RNN):
        msg = f"truncate applies to an RNN only, got truncate={truncate} for {type(model).__name__}"
        raise XpnnValueError(msg)
    if clip is not None:
        check_positive(clip, "clip")
