"""The agreement runs: a registry of seeded training runs, and their execution on one
backend, device and dtype."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xpnn import datasets
from xpnn.backends import to_numpy
from xpnn.course import networks
from xpnn.nn.mlp import MLP
from xpnn.optim import SGD, Adam, Momentum
from xpnn.training.train import train

HostArray = Any  # a numpy.ndarray, from xpnn.to_numpy or xpnn.datasets

REFERENCE = "numpy"
DTYPES = ("float64", "float32")
SEED = 0


@dataclass(frozen=True)
class Run:
    """One seeded training run: ``build(backend, device, dtype)`` returns the model, the
    optimiser and the data stream."""

    name: str
    steps: int
    build: Callable[[str, Any, str], tuple[Any, Any, Any]]
    truncate: int | None = None


def _regression(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """Notebook 1_3: 2-10-1, relu hidden, identity output, squared error, lr 0.07, batch 1."""
    net = networks.regression_network(seed=SEED, backend=backend, device=device, dtype=dtype)
    x, d = _linear_data()
    return net, SGD(0.07), datasets.SampleStream(x, d, 1, seed=SEED)


def _classifier(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """A 2-16-3 softmax classifier (tanh hidden, cross-entropy, He init) on three Gaussian
    blobs, momentum SGD (lr 0.1, momentum 0.9), batch 20."""
    net = MLP(
        [2, 16, 3],
        hidden="tanh",
        output="softmax",
        loss="cross_entropy",
        init="he",
        seed=SEED,
        backend=backend,
        device=device,
        dtype=dtype,
    )
    x, d = _blobs()
    return net, Momentum(0.1, 0.9), datasets.SampleStream(x, d, 20, seed=SEED)


def _addition(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """Notebook 3_1: a 2-16-1 sigmoid RNN on 8-bit binary addition, lr 0.1, batch 32."""
    net = networks.addition_network(seed=SEED, backend=backend, device=device, dtype=dtype)
    return net, SGD(0.1), datasets.BinaryAdditionStream(32, bits=8, seed=SEED)


def _adding(cell: str) -> Callable[[str, Any, str], tuple[Any, Any, Any]]:
    """Day 3: a 2-8-1 many-to-one ``cell`` network on the adding problem (10 steps),
    Adam (lr 0.01), batch 16."""

    def build(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
        net = networks.adding_network(
            cell=cell, hidden_size=8, seed=SEED, backend=backend, device=device, dtype=dtype
        )
        return net, Adam(0.01), datasets.AddingProblemStream(16, steps=10, seed=SEED)

    return build


_DATA: dict[str, tuple[HostArray, HostArray]] = {}


def _linear_data() -> tuple[HostArray, HostArray]:
    if "linear" not in _DATA:
        _DATA["linear"] = datasets.linear(10_000, seed=SEED)
    return _DATA["linear"]


def _blobs() -> tuple[HostArray, HostArray]:
    if "blobs" not in _DATA:
        _DATA["blobs"] = datasets.blobs(600, seed=SEED)
    return _DATA["blobs"]


LAZY_STEPS = {"dask": 20}
"""Steps a lazy backend runs instead of the run's own: on dask every step of these tiny
batches is a task graph (about half a second a step on a 2-core machine), so its rows
compare the first 20 steps with a NumPy reference of the same 20 steps."""

RUNS: dict[str, Run] = {
    run.name: run
    for run in (
        Run("mlp-regression", 500, _regression),
        Run("mlp-softmax", 200, _classifier),
        Run("rnn-addition", 500, _addition),
        Run("rnn-addition-trunc3", 500, _addition, truncate=3),
        Run("lstm-adding", 200, _adding("lstm")),
        Run("gru-adding-trunc4", 200, _adding("gru"), truncate=4),
    )
}


@dataclass
class Outcome:
    """The recorded result of one run: the loss of every step and the final params."""

    losses: HostArray
    params: dict[str, HostArray]
    seconds: float


def execute(run: Run, backend: str, device: Any, dtype: str, *, compile: str = "off") -> Outcome:
    """Train ``run`` on ``backend``/``device`` in ``dtype``, the step compiled or not
    (``compile``, as for ``train``), and bring the results home."""
    model, optimizer, stream = run.build(backend, device, dtype)
    began = time.perf_counter()
    result = train(
        model,
        optimizer,
        stream,
        iters=run.steps,
        log_every=1,
        truncate=run.truncate,
        compile=compile,
    )
    seconds = time.perf_counter() - began
    losses = to_numpy([loss for _, loss in result.history])
    params = {k: to_numpy(v).astype("float64") for k, v in result.params.items()}
    return Outcome(losses, params, seconds)
