"""Optimisers as functional updates of parameter dicts.

``update(params, grads)`` returns a new dict and never writes into an array, so the same
code runs on JAX. An optimiser with memory (``Momentum``) keeps it as a dict of arrays
that ``state_dict``/``load_state_dict`` expose for checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xpnn.backend import Array
from xpnn.errors import XpnnValueError


def _check_rate(value: Any, name: str, *, upper: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0 or (upper is not None and value >= upper):
        bound = f"in (0, {upper})" if upper is not None else "positive and finite"
        msg = f"{name} must be {bound}, got {value!r}"
        raise XpnnValueError(msg)
    return float(value)


def _check_keys(params: Mapping[str, Array], grads: Mapping[str, Array]) -> None:
    if set(params) != set(grads):
        msg = f"grads must have the keys of params {sorted(params)}, got {sorted(grads)}"
        raise XpnnValueError(msg)


class SGD:
    """Plain stochastic gradient descent: ``p = p - lr * g``."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = _check_rate(lr, "lr")

    def update(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> dict[str, Array]:
        """New parameters after one step."""
        _check_keys(params, grads)
        return {key: p - self.lr * grads[key] for key, p in params.items()}

    def state_dict(self) -> dict[str, Array]:
        """The optimiser's memory (none for SGD)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Array]) -> None:
        """Restore what ``state_dict`` returned."""
        if state:
            msg = f"SGD keeps no state, got keys {sorted(state)}"
            raise XpnnValueError(msg)


class Momentum(SGD):
    """SGD with momentum: ``v = momentum * v - lr * g``, ``p = p + v`` (``v`` starts at 0)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = _check_rate(momentum, "momentum", upper=1.0)
        self.velocity: dict[str, Array] = {}

    def update(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> dict[str, Array]:
        """New parameters after one step; the velocity is replaced, not written into."""
        _check_keys(params, grads)
        new_params, velocity = {}, {}
        for key, p in params.items():
            step = -self.lr * grads[key]
            if key in self.velocity:
                step = self.momentum * self.velocity[key] + step
            velocity[key] = step
            new_params[key] = p + step
        self.velocity = velocity
        return new_params

    def state_dict(self) -> dict[str, Array]:
        """The velocity of each parameter, keyed by parameter name."""
        return dict(self.velocity)

    def load_state_dict(self, state: Mapping[str, Array]) -> None:
        """Restore the velocity from ``state_dict``'s output."""
        self.velocity = dict(state)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum}
