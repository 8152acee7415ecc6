"""Random sequences and targets for the recurrent-network tests (host arrays), and random
biases for a network under test."""

from __future__ import annotations

from typing import Any

import numpy as np


def random_sequences(
    output: str, many_to_one: bool, seed: int, shape: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(T, B, I)`` drawn from a normal distribution and targets that fit
    ``output``: one-hot rows for softmax, values in [0, 1) for sigmoid, normal otherwise;
    ``(T, B, O)``, or ``(B, O)`` if ``many_to_one``. ``shape`` is ``(T, B, I, O)``."""
    steps, batch, inputs, outputs = shape
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(steps, batch, inputs))
    lead = (batch,) if many_to_one else (steps, batch)
    if output == "softmax":
        ds = np.eye(outputs)[rng.integers(0, outputs, size=lead)]
    elif output == "sigmoid":
        ds = rng.uniform(size=(*lead, outputs))
    else:
        ds = rng.normal(size=(*lead, outputs))
    return xs, ds


def with_random_biases(net: Any, seed: int) -> None:
    """Give the RNN ``net`` non-zero biases (normal draws), so that their gradients and
    their place in each gate are tested."""
    rng = np.random.default_rng(seed)
    net.params = {
        key: net.asarray(rng.normal(size=tuple(value.shape))) if key.startswith("b") else value
        for key, value in net.params.items()
    }
