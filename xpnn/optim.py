"""Optimisers as pure transforms of parameter dicts (the shape optax made standard).

An optimiser holds only its hyperparameters. Its memory is a flat dict of arrays that
the caller keeps and passes back::

    state = opt.init(params)                          # {} for SGD
    params, state = opt.update(params, grads, state)  # new dicts; nothing written into

Because the state is plain arrays, a step that updates it compiles (``jax.jit``,
``torch.compile``) and checkpoints like the parameters. State keys are
``"<slot>.<parameter>"`` with the course's slot names (``v`` velocity, ``h`` sum or
average of squared gradients, ``m`` and ``v`` Adam's moments) and, for Adam, ``"t"``,
the number of steps taken, a 0-d array.

``init`` and ``update`` check their arguments (params a dict of floating arrays keyed by
strings; every grad an array of its parameter's shape, dtype and backend; the state of
this optimiser for these parameters); ``update_unchecked`` is the same update unchecked,
for the compiled training step (``xpnn.make_step``). ``clip_by_global_norm`` is a
transform of the gradients, applied before the update. ``check_state_values`` reads a state's values
(where a state enters: ``train``, a checkpoint's load). An optimiser is frozen: a
compiled step keeps the hyperparameters it was made with, so ``opt.lr = ...`` raises and
``opt.with_(lr=...)`` makes a new optimiser.

Defaults are those of "Deep Learning from Scratch" (``common/optimizer.py``), the
course's Day-2 code, with its ``1e-7`` made an explicit ``eps``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

from xpnn.backends import Array, ArrayNamespace, device_of, namespace_of
from xpnn.errors import (
    XpnnAttributeError,
    XpnnTypeError,
    XpnnValueError,
    check_choice,
    check_fraction,
    check_positive,
    shown,
)

State = dict[str, Array]


class Optimizer:
    """What every optimiser shares: its state layout, ``init``, the checks of ``update``
    and of a state's values. Subclasses set ``slots`` (per-parameter state arrays),
    ``counts_steps`` (a 0-d ``"t"``), ``nonnegative`` (the slots that sum or average
    squared gradients) and write ``update_unchecked``.

    An optimiser is frozen: its hyperparameters are fixed at construction, because a step
    made by ``make_step`` (compiled by ``jax.jit`` or ``torch.compile``) keeps the values
    it was made with. ``opt.with_(lr=1e-4)`` makes a new one.
    """

    name = ""
    slots: tuple[str, ...] = ()
    counts_steps = False
    nonnegative: tuple[str, ...] = ()
    lr: float

    def __init__(self, **hyperparameters: float) -> None:
        """Hold ``hyperparameters`` (already checked by the subclass) as attributes."""
        object.__setattr__(self, "_hyperparameters", dict(hyperparameters))
        for key, value in hyperparameters.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        msg = (
            f"{self!r} is frozen: {name} cannot change after construction, since a step "
            f"made by make_step keeps the values it was made with; make a new optimiser "
            f"with opt.with_({name}=...) and a new step"
        )
        raise XpnnAttributeError(msg, argument=name)

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    @property
    def hyperparameters(self) -> dict[str, float]:
        """The constructor's arguments, by name (what a checkpoint stores)."""
        return dict(self._hyperparameters)

    def with_(self, **changes: Any) -> Optimizer:
        """A new optimiser of this kind with ``changes`` to its hyperparameters
        (``Adam(0.01).with_(lr=1e-4)``); this one is left as it is.

        Raises
        ------
        XpnnValueError
            A hyperparameter this optimiser does not take, or a value out of range.
        """
        _check_takes(type(self), changes)
        return type(self)(**{**self.hyperparameters, **changes})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"

    def state_shapes(self, param_shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple]:
        """The key and shape of every state array, for parameters of ``param_shapes``."""
        shapes = {
            f"{slot}.{key}": tuple(shape)
            for slot in self.slots
            for key, shape in param_shapes.items()
        }
        if self.counts_steps:
            shapes["t"] = ()
        return shapes

    def init(self, params: Mapping[str, Array]) -> State:
        """The state before the first step: zeros of each parameter's shape, dtype and
        device per slot (and ``t = 0``).

        Raises
        ------
        XpnnTypeError, XpnnValueError
            ``params`` is not a non-empty dict of floating arrays of one backend and
            device keyed by strings.
        """
        check_params(params)
        state = {}
        for slot in self.slots:
            for key, p in params.items():
                xp = namespace_of(p)
                state[f"{slot}.{key}"] = xp.zeros(p.shape, dtype=p.dtype, device=device_of(p))
        if self.counts_steps:
            p = next(iter(params.values()))
            state["t"] = namespace_of(p).zeros((), dtype=p.dtype, device=device_of(p))
        return state

    def update(
        self, params: Mapping[str, Array], grads: Mapping[str, Array], state: Mapping[str, Array]
    ) -> tuple[dict[str, Array], State]:
        """New parameters and state after one step, with every argument checked.

        Parameters
        ----------
        params : dict of arrays
            Keyed by strings, of a floating dtype, one backend and device.
        grads : dict of arrays
            The same keys; each grad has its parameter's shape, dtype and device.
        state : dict of arrays
            What ``init`` (or the previous ``update``) returned for these parameters.

        Raises
        ------
        XpnnValueError, XpnnTypeError
            ``params`` is not such a dict; a grad or state array is missing, extra, not an
            array, or of the wrong shape, dtype, backend or device.
        """
        check_params(params)
        check_like(params, grads, "grads", "params")
        self.check_state(params, state)
        return self.update_unchecked(params, grads, state, xp=namespace_of(*params.values()))

    def check_state(self, params: Mapping[str, Array], state: Any, *, values: bool = False) -> None:
        """Refuse ``params`` that ``check_params`` refuses and a ``state`` that is not this
        optimiser's for ``params``: not a dict, missing or extra keys, arrays of another
        shape, dtype or device; where ``values`` (a sync point), values that
        ``check_state_values`` refuses."""
        check_params(params)
        if not isinstance(state, Mapping):
            msg = (
                f"state must be the dict of arrays from {self!r}.init(params), got "
                f"{type(state).__name__}"
            )
            raise XpnnTypeError(msg, argument="state")
        shapes = self.state_shapes({k: tuple(p.shape) for k, p in params.items()})
        if set(state) != set(shapes):
            msg = (
                f"state does not belong to {self!r} and these parameters: it must have the keys "
                f"{sorted(shapes)}, got {shown(sorted(state, key=str))}"
            )
            raise XpnnValueError(msg, argument="state")
        like = next(iter(params.values()))
        for key, shape in shapes.items():
            ref = params[key.split(".", 1)[1]] if "." in key else like
            _check_one(state[key], ref, f"state[{key!r}]", shape)
        if values:
            self.check_state_values(state)

    def check_state_values(self, state: Mapping[str, Array]) -> None:
        """Refuse state values that no run of this optimiser reaches: NaN or infinity, a
        negative value in a slot of squared gradients (``nonnegative``: Adam's ``v``,
        AdaGrad's and RMSProp's ``h``), a step count ``t`` that is negative or not whole.
        ``state`` has passed ``check_state``. Reads the values: one sync when they hold
        (call it where a state enters: ``train``, a checkpoint's load), one per array to
        name the culprit when they do not.

        Raises
        ------
        XpnnValueError
            Names the state array and what is wrong with it.
        """
        if not state:
            return
        xp = namespace_of(*state.values())
        fine = [self._value_ok(key, a, xp) for key, a in state.items()]
        if bool(xp.all(xp.stack(fine))):
            return
        for key, a in state.items():
            if bool(self._value_ok(key, a, xp)):
                continue
            if not bool(xp.all(xp.isfinite(a))):
                msg = f"state[{key!r}] contains NaN or infinity"
            elif key == "t":
                msg = (
                    "state['t'] is the number of steps taken, a whole number >= 0; "
                    f"got {float(a)!r}"
                )
            else:
                msg = (
                    f"state[{key!r}] holds negative values, but {type(self).__name__}'s "
                    f"{key.split('.', 1)[0]!r} accumulates squared gradients and is never "
                    "negative; pass the state that init or update returned"
                )
            raise XpnnValueError(msg, argument=f"state[{key!r}]")

    def _value_ok(self, key: str, a: Array, xp: ArrayNamespace) -> Array:
        """A 0-d boolean: whether state array ``key`` holds values this optimiser reaches."""
        ok = xp.all(xp.isfinite(a))
        if key == "t" and self.counts_steps:
            ok = ok & (a >= 0) & (a == xp.floor(a))
        elif key.split(".", 1)[0] in self.nonnegative:
            ok = ok & xp.all(a >= 0)
        return ok

    def update_unchecked(
        self,
        params: Mapping[str, Array],
        grads: Mapping[str, Array],
        state: Mapping[str, Array],
        *,
        xp: ArrayNamespace,
    ) -> tuple[dict[str, Array], State]:
        """``update`` without the checks, ``xp`` the parameters' namespace: pure, no
        host reads (the training step's)."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        """``apply``, the name ``update_unchecked`` had, with a ``DeprecationWarning``."""
        if name != "apply":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        warnings.warn(
            "Optimizer.apply is deprecated; use update_unchecked (or update, which checks)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.update_unchecked


def check_params(params: Any, name: str = "params") -> None:
    """Refuse ``params`` unless it is a non-empty dict keyed by strings (parameter names)
    of arrays of a real floating dtype, all of one backend and device. Metadata only."""
    if not isinstance(params, Mapping):
        kind = type(params).__name__
        msg = f"{name} must be a dict of parameter arrays keyed by name, got {kind}"
        raise XpnnTypeError(msg, argument=name)
    if not params:
        msg = f"{name} is empty; it must hold at least one parameter array"
        raise XpnnValueError(msg, argument=name)
    first = None
    for key, p in params.items():
        if not isinstance(key, str):
            msg = f"{name} must be keyed by strings (parameter names), got the key {shown(key)}"
            raise XpnnTypeError(msg, argument=name)
        try:
            xp = namespace_of(p)
        except XpnnTypeError:
            msg = f"{name}[{key!r}] must be an array, got {type(p).__name__}"
            raise XpnnTypeError(msg, argument=name) from None
        if not xp.isdtype(p.dtype, "real floating"):
            msg = f"{name}[{key!r}] must have a real floating dtype, got {p.dtype}"
            raise XpnnTypeError(msg, argument=name)
        if first is None:
            first = key
        elif xp is not namespace_of(params[first]) or device_of(p) != device_of(params[first]):
            msg = (
                f"{name}[{key!r}] is not on the backend and device of {name}[{first!r}]; "
                "every parameter must be"
            )
            raise XpnnTypeError(msg, argument=name)


def check_like(reference: Mapping[str, Array], tree: Any, name: str, reference_name: str) -> None:
    """Refuse ``tree`` unless it has ``reference``'s keys and, under each, an array of
    the same shape, dtype, backend and device."""
    if not isinstance(tree, Mapping):
        kind = type(tree).__name__
        msg = f"{name} must be a dict of arrays keyed like {reference_name}, got {kind}"
        raise XpnnTypeError(msg, argument=name)
    if set(tree) != set(reference):
        got = shown(sorted(tree, key=str))
        msg = f"{name} must have the keys of {reference_name} {sorted(reference)}, got {got}"
        raise XpnnValueError(msg, argument=name)
    for key, ref in reference.items():
        _check_one(tree[key], ref, f"{name}[{key!r}]", tuple(ref.shape))


def _check_one(x: Any, ref: Array, name: str, shape: tuple[int, ...]) -> None:
    try:
        xp = namespace_of(x)
    except XpnnTypeError:
        kind = type(x).__name__
        msg = f"{name} must be an array of shape {shape} and dtype {ref.dtype}, got {kind}"
        raise XpnnTypeError(msg, argument=name.split("[")[0]) from None
    if xp is not namespace_of(ref) or device_of(x) != device_of(ref) or x.dtype != ref.dtype:
        msg = (
            f"{name} must be an array of dtype {ref.dtype} on the parameters' backend and "
            f"device, got dtype {x.dtype} from {xp.__name__}"
        )
        raise XpnnTypeError(msg, argument=name.split("[")[0])
    if tuple(x.shape) != shape:
        msg = f"{name} must have shape {shape}, got {tuple(x.shape)}"
        raise XpnnValueError(msg, argument=name.split("[")[0])


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``p = p - lr * g``; no state.

    The same as ``torch.optim.SGD(lr=lr)``.
    """

    name = "sgd"

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=check_positive(lr, "lr"))

    def update_unchecked(self, params, grads, state, *, xp):
        return {key: p - self.lr * grads[key] for key, p in params.items()}, {}


class Momentum(Optimizer):
    """SGD with momentum (state ``v.<name>``, starting at 0)::

        v = momentum * v - lr * g        p = p + v

    ``torch.optim.SGD(lr, momentum)`` keeps ``b = momentum * b + g`` and steps
    ``p = p - lr * b``: the same numbers up to rounding (``v = -lr * b``), for a constant
    ``lr`` and ``dampening=0``.
    """

    name = "momentum"
    slots = ("v",)

    momentum: float

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(
            lr=check_positive(lr, "lr"), momentum=check_fraction(momentum, "momentum", zero=False)
        )

    def update_unchecked(self, params, grads, state, *, xp):
        new_params, new_state = {}, {}
        for key, p in params.items():
            v = self.momentum * state[f"v.{key}"] + -self.lr * grads[key]
            new_state[f"v.{key}"] = v
            new_params[key] = p + v
        return new_params, new_state


class AdaGrad(Optimizer):
    """AdaGrad (state ``h.<name>``, the sum of squared gradients)::

        h = h + g * g        p = p - lr * g / (sqrt(h) + eps)

    The same formula as ``torch.optim.Adagrad(lr, eps=eps)`` with its defaults
    ``lr_decay=0`` and ``initial_accumulator_value=0`` (torch's default ``eps`` is 1e-10).
    """

    name = "adagrad"
    slots = ("h",)
    nonnegative = ("h",)
    eps: float

    def __init__(self, lr: float = 0.01, eps: float = 1e-7) -> None:
        super().__init__(lr=check_positive(lr, "lr"), eps=check_positive(eps, "eps"))

    def update_unchecked(self, params, grads, state, *, xp):
        new_params, new_state = {}, {}
        for key, p in params.items():
            g = grads[key]
            h = state[f"h.{key}"] + g * g
            new_state[f"h.{key}"] = h
            new_params[key] = p - self.lr * g / (xp.sqrt(h) + self.eps)
        return new_params, new_state


class RMSProp(Optimizer):
    """RMSProp (state ``h.<name>``, a moving average of squared gradients)::

        h = decay * h + (1 - decay) * g * g        p = p - lr * g / (sqrt(h) + eps)

    The same formula as ``torch.optim.RMSprop(lr, alpha=decay, eps=eps)`` (torch's
    defaults: ``alpha=0.99``, ``eps=1e-8``).
    """

    name = "rmsprop"
    slots = ("h",)
    nonnegative = ("h",)
    decay: float
    eps: float

    def __init__(self, lr: float = 0.01, decay: float = 0.99, eps: float = 1e-7) -> None:
        super().__init__(
            lr=check_positive(lr, "lr"),
            decay=check_fraction(decay, "decay"),
            eps=check_positive(eps, "eps"),
        )

    def update_unchecked(self, params, grads, state, *, xp):
        new_params, new_state = {}, {}
        for key, p in params.items():
            g = grads[key]
            h = self.decay * state[f"h.{key}"] + (1 - self.decay) * (g * g)
            new_state[f"h.{key}"] = h
            new_params[key] = p - self.lr * g / (xp.sqrt(h) + self.eps)
        return new_params, new_state


class Adam(Optimizer):
    """Adam with bias correction (state ``m.<name>``, ``v.<name>`` and the step count
    ``t``), in the form of the Adam paper's section 2 and "Deep Learning from Scratch"::

        t = t + 1
        m = beta1 * m + (1 - beta1) * g        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        p = p - lr_t * m / (sqrt(v) + eps)

    ``torch.optim.Adam`` divides by ``sqrt(v / (1 - beta2**t)) + eps`` instead: its
    ``eps`` is this ``eps / sqrt(1 - beta2**t)``, so the two agree when ``eps`` is
    negligible against ``sqrt(v)``, and differ by the place of ``eps`` otherwise.
    """

    name = "adam"
    slots = ("m", "v")
    counts_steps = True
    nonnegative = ("v",)
    beta1: float
    beta2: float
    eps: float

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7
    ) -> None:
        super().__init__(
            lr=check_positive(lr, "lr"),
            beta1=check_fraction(beta1, "beta1"),
            beta2=check_fraction(beta2, "beta2"),
            eps=check_positive(eps, "eps"),
        )

    def update_unchecked(self, params, grads, state, *, xp):
        t = state["t"] + 1
        lr_t = self.lr * xp.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        new_params, new_state = {}, {"t": t}
        for key, p in params.items():
            g = grads[key]
            m = self.beta1 * state[f"m.{key}"] + (1 - self.beta1) * g
            v = self.beta2 * state[f"v.{key}"] + (1 - self.beta2) * (g * g)
            new_state[f"m.{key}"], new_state[f"v.{key}"] = m, v
            new_params[key] = p - lr_t * m / (xp.sqrt(v) + self.eps)
        return new_params, new_state


def clip_by_global_norm(
    grads: Mapping[str, Array], max_norm: float, xp: ArrayNamespace
) -> dict[str, Array]:
    """Scale all gradients by ``min(1, max_norm / ||g||)``, ``||g||`` the norm of all of
    them together (a transform of the gradients before the update). Pure: no value is
    read on the host."""
    total = sum(xp.sum(g * g) for g in grads.values())
    norm = xp.sqrt(total)
    factor = max_norm / xp.maximum(norm, xp.full_like(norm, max_norm))
    return {key: g * factor for key, g in grads.items()}


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, AdaGrad, RMSProp, Adam)
}


def build(name: str, **hyperparameters: Any) -> Optimizer:
    """The optimiser ``name`` (a key of ``OPTIMIZERS``) with ``hyperparameters``; those
    not given keep the class's defaults.

    Raises
    ------
    XpnnValueError
        An unknown name, a hyperparameter the optimiser does not take (``momentum`` for
        ``adam``), or a value out of range.
    """
    _check_takes(OPTIMIZERS[check_choice(name, "optimizer", OPTIMIZERS)], hyperparameters)
    return OPTIMIZERS[name](**hyperparameters)


def _check_takes(cls: type[Optimizer], hyperparameters: Mapping[str, Any]) -> None:
    """Refuse a hyperparameter that optimiser class ``cls`` does not take."""
    takes = tuple(inspect.signature(cls).parameters)
    foreign = sorted(set(hyperparameters) - set(takes), key=str)
    if foreign:
        msg = (
            f"optimizer {cls.name} does not take {', '.join(map(str, foreign))}; "
            f"it takes {', '.join(takes)}"
        )
        raise XpnnValueError(msg, argument=str(foreign[0]))
