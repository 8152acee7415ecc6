"""``make_step``: the one definition of a training step.

A step is a pure function ``params, state, loss = step(params, state, x, d)``: forward,
backward (full or truncated BPTT), optional clipping by global norm, the optimiser's
update, and the batch loss as a 0-D array computed before the update. It reads no value
on the host, so ``jax.jit`` and ``torch.compile`` can compile it (``compile=``).

Calling the step checks its arguments' structure (keys, shapes, dtypes, backend, device
and the optimiser state's layout: metadata only, no value read) the first time it meets
that structure, before the compiled call; later calls with the same structure cost one
key of that metadata and a set lookup. ``train`` checks its input once, at the boundary,
and then runs the step unchecked (``Step.unchecked``) in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xpnn.backends import Array, ArrayNamespace, check_compile, compile_loop, compile_step
from xpnn.checks import check_positive, check_size
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

    def __init__(
        self,
        fn: StepFn,
        run: StepFn,
        compiled: bool,
        backend: str,
        *,
        check: Callable[[Any, Any, Any, Any], None],
    ) -> None:
        self.fn, self._run, self.compiled, self.backend = fn, run, compiled, backend
        self._check = check
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
        arguments (``train``)."""
        return self._run(params, state, x, d)

    def _check_call(self, params: Any, state: Any, x: Any, d: Any) -> None:
        """Check the arguments (``make_step``'s ``check``) unless their structure
        (``_structure``, metadata only) passed before."""
        try:
            key = _structure(params, state, x, d)
            if key in self._checked:
                return
        except (AttributeError, TypeError):  # not dicts of arrays: the check says what
            key = None
        self._check(params, state, x, d)
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
        Supplies the math: its unchecked core (``xpnn.nn.core.ModelCore``), taken from
        ``model.core``, so the step neither reads nor sets ``model.params`` and does not
        keep the model alive.
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
        the model's ``forward_unchecked`` and ``loss_unchecked`` take them (``x``
        ``(B, n_in)`` or ``(T, B, I)``; ``d`` floating targets), ``loss`` 0-D, the
        batch's loss before the update. A call whose arguments have a structure the step
        has not met raises ``XpnnTypeError`` or ``XpnnValueError`` for parameters, state
        or a batch that do not fit the model and optimiser (``model.check_params``,
        ``optimizer.check_state``, ``model.check_batch``).

    Raises
    ------
    XpnnTypeError, XpnnValueError
        A bad model, optimiser, ``truncate``, ``clip``, ``compile`` or ``steps``.
    """
    check_step_args(model, optimizer, truncate, clip)
    check_compile(compile)
    truncate = check_truncate(truncate)
    steps = None if steps is None else check_size(steps, "steps")
    xp, core = model.xp, model.core

    def step(params, state, x, d):
        _y, cache = core.forward_unchecked(x, params)
        loss = core.loss_unchecked(cache, d)
        grads = core.backward_unchecked(cache, d, truncate)
        if clip is not None:
            grads = clip_by_global_norm(grads, clip, xp)
        params, state = optimizer.apply(params, grads, state, xp=xp)
        return params, state, loss

    def check(params: Any, state: Any, x: Any, d: Any) -> None:
        """Metadata only: no value is read, no device waited for."""
        core.check_params(params)
        optimizer.check_state(params, state)
        core.check_batch(x, d)

    run, compiled = compile_step(step, model.backend, compile, device=model.device, steps=steps)
    return Step(step, run, compiled, model.backend, check=check)


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
