"""The training step: a gradient part and an update part, fused into one pure function.

::

    loss, grads = core.value_and_grad(params, x, d, truncate)  # the gradient part
    params, state = update(params, state, grads)               # clip, then the optimiser

``make_step`` fuses the two into ``params, state, loss = step(params, state, x, d)``,
the batch loss computed before the update. It reads no value on the host, so
``jax.jit`` and ``torch.compile`` can compile it (``compile=``). The training loop
(``xpnn.training.loop``) runs it, or, with a gradient source that computes the gradient
part elsewhere (``xpnn.parallel.Gradients``), runs ``make_update``'s update part alone.

Calling the step checks its arguments' structure (keys, shapes, dtypes, backend, device
and the optimiser state's layout: metadata only, no value read) the first time it meets
that structure, before the compiled call; later calls with the same structure cost one
key of that metadata and a set lookup. The loop checks its input once, at the boundary,
and then runs the step unchecked (``Step.unchecked``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn.backends import Array, compile_loop, compile_step, compiler_for
from xpnn.errors import XpnnTypeError, XpnnValueError, check_integer, check_positive
from xpnn.nn.core import Core
from xpnn.nn.model import Model
from xpnn.nn.rnn import RNN, check_truncate
from xpnn.optim import Optimizer, clip_by_global_norm

StepFn = Callable[[dict, dict, Array, Array], tuple[dict, dict, Array]]
Update = Callable[[dict, dict, dict], tuple[dict, dict]]


def make_update(optimizer: Optimizer, clip: float | None, xp: Any) -> Update:
    """The update part: ``params, state = update(params, state, grads)``, the gradients
    clipped to the global norm ``clip`` (None: not clipped), then ``optimizer``'s
    unchecked update. Pure."""

    def update(params: dict, state: dict, grads: dict) -> tuple[dict, dict]:
        if clip is not None:
            grads = clip_by_global_norm(grads, clip, xp)
        return optimizer.update_unchecked(params, grads, state, xp=xp)

    return update


class Step:
    """A training step: call it as ``params, state, loss = step(params, state, x, d)``.

    Attributes
    ----------
    compiled : bool
        Whether the step runs compiled (``jax.jit`` or ``torch.compile``).
    compiler : str or None
        What compiles it, or None for an eager step.
    fn : callable
        The uncompiled step (what a compiler traces).
    backend : str
        The model's backend.
    """

    def __init__(self, fn: StepFn, core: Core, optimizer: Optimizer, compiler: str | None) -> None:
        self.fn, self.compiler, self.backend = fn, compiler, core.backend
        self.compiled = compiler is not None
        self._run = compile_step(fn, core.backend, compiler, device=core.device)
        self._core, self._optimizer = core, optimizer
        self._checked: set[tuple] = set()  # the argument structures that passed the check
        self._loops: dict[tuple[int, int, int], Any] = {}

    def __call__(
        self, params: dict[str, Array], state: dict[str, Array], x: Array, d: Array
    ) -> tuple[dict[str, Array], dict[str, Array], Array]:
        self._check_call(params, state, x, d)
        return self._run(params, state, x, d)

    def unchecked(
        self, params: dict[str, Array], state: dict[str, Array], x: Array, d: Array
    ) -> tuple[dict[str, Array], dict[str, Array], Array]:
        """The step without the check of ``__call__``: for a caller that checked its
        arguments (the training loop)."""
        return self._run(params, state, x, d)

    def _check_call(self, params: Any, state: Any, x: Any, d: Any) -> None:
        """Check the arguments (metadata only: no value is read, no device waited for)
        unless their structure (``_structure``) passed before."""
        try:
            key = _structure(params, state, x, d)
            if key in self._checked:
                return
        except (AttributeError, TypeError):  # not dicts of arrays: the check says what
            key = None
        self._core.check_params(params)
        self._optimizer.check_state(params, state)
        self._core.check_batch(x, d)
        if key is not None:
            self._checked.add(key)

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
        Supplies the math: its core (``model.core``), so the step neither reads nor sets
        ``model.params`` and does not keep the model alive.
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
        ``model.core`` takes it (``x`` ``(B, n_in)`` or ``(T, B, I)``; ``d`` floating
        targets), ``loss`` 0-D, the batch's loss before the update. A call whose
        arguments have a structure the step has not met raises ``XpnnTypeError`` or
        ``XpnnValueError`` for parameters, state or a batch that do not fit the model and
        optimiser.

    Raises
    ------
    XpnnTypeError, XpnnValueError
        A bad model, optimiser, ``truncate``, ``clip``, ``compile`` or ``steps``.
    """
    truncate, clip = check_step_args(model, optimizer, truncate, clip)
    steps = None if steps is None else check_integer(steps, "steps")
    return build_step(
        model.core, optimizer, truncate, clip, compiler_for(model.backend, compile, steps=steps)
    )


def build_step(
    core: Core, optimizer: Optimizer, truncate: int | None, clip: float | None, compiler: str | None
) -> Step:
    """``make_step``'s step from settings already checked and decided (``compiler``:
    ``compiler_for``'s decision)."""
    update = make_update(optimizer, clip, core.xp)

    def step(params, state, x, d):
        loss, grads = core.value_and_grad(params, x, d, truncate)
        params, state = update(params, state, grads)
        return params, state, loss

    return Step(step, core, optimizer, compiler)


def _structure(params: Any, state: Any, x: Any, d: Any) -> tuple:
    """What the step's check depends on, as a hashable key read from metadata: every
    parameter's and state array's key, type, shape and dtype, and the type, shape, dtype
    and device of ``x`` and ``d`` (a batch is new at every call; the parameters and state
    are the previous step's, on its device: reading every array's device would double the
    key's cost on JAX). An ``AttributeError`` or ``TypeError`` where the arguments are not
    dicts of arrays."""
    return (
        tuple([(k, type(a), a.shape, a.dtype) for k, a in params.items()]),
        tuple([(k, type(a), a.shape, a.dtype) for k, a in state.items()]),
        (type(x), x.shape, x.dtype, getattr(x, "device", None)),  # dask: no device
        (type(d), d.shape, d.dtype, getattr(d, "device", None)),
    )


def check_step_args(
    model: Any, optimizer: Any, truncate: Any, clip: Any
) -> tuple[int | None, float | None]:
    """``truncate`` and ``clip``, checked; refuse a model that is not an xpnn model, an
    optimiser that is not an xpnn optimiser, ``truncate`` for a non-RNN, and a ``clip``
    that is not positive and finite."""
    if not isinstance(model, Model):
        msg = f"model must be an xpnn MLP or RNN, got {type(model).__name__}"
        raise XpnnTypeError(msg, argument="model")
    if not isinstance(optimizer, Optimizer):
        msg = (
            "optimizer must be an xpnn optimiser (SGD, Momentum, AdaGrad, RMSProp, Adam), "
            f"got {type(optimizer).__name__}"
        )
        raise XpnnTypeError(msg, argument="optimizer")
    truncate = check_truncate(truncate)
    if truncate is not None and not isinstance(model, RNN):
        msg = f"truncate applies to an RNN only, got truncate={truncate} for {type(model).__name__}"
        raise XpnnValueError(msg, argument="truncate")
    return truncate, None if clip is None else check_positive(clip, "clip")
