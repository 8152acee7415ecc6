"""The agreement runs: a registry of seeded training runs, and their execution on one
backend, device and dtype. The course's runs take their settings from ``xpnn train``'s
registry (``xpnn.course.registry.RUNS``), changed where a short agreement run needs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from xpnn import datasets
from xpnn.backends import to_numpy
from xpnn.course import networks
from xpnn.course.registry import RUNS as COURSE_RUNS
from xpnn.nn.mlp import MLP
from xpnn.optim import Momentum
from xpnn.training.loop import train

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


def _course(run: str, backend: str, device: Any, dtype: str, **changes: Any) -> Any:
    """The settings of ``xpnn train`` ``run`` at ``SEED`` on ``backend``/``device`` in
    ``dtype``, with ``changes``."""
    defaults = COURSE_RUNS[run].settings()
    return replace(defaults, seed=SEED, backend=backend, device=device, dtype=dtype, **changes)


def _regression(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
    """Notebook 1_3 (``xpnn train regression``): 2-10-1, relu hidden, identity output,
    squared error, SGD lr 0.07, batch 1; 10,000 samples."""
    s = _course("regression", backend, device, dtype)
    net = networks.regression_network(
        hidden_size=s.hidden_size, activation=s.activation, **s.placement()
    )
    x, d = _linear_data()
    return net, s.make_optimizer(), datasets.SampleStream(x, d, s.batch_size, seed=SEED)


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
    """Notebook 3_1 (``xpnn train binary-addition``): a 2-16-1 sigmoid RNN on 8-bit
    binary addition, SGD lr 0.1, batch 32."""
    s = _course("binary-addition", backend, device, dtype, batch_size=32)
    net = networks.addition_network(
        hidden_size=s.hidden_size,
        activation=s.activation,
        init=s.init,
        weight_init_std=s.weight_init_std,
        cell=s.cell,
        **s.placement(),
    )
    stream = datasets.BinaryAdditionStream(s.batch_size, bits=s.bits, seed=SEED)
    return net, s.make_optimizer(), stream


def _adding(cell: str) -> Callable[[str, Any, str], tuple[Any, Any, Any]]:
    """Day 3 (``xpnn train adding-problem``): a 2-8-1 many-to-one ``cell`` network on the
    adding problem (10 steps), Adam lr 0.01, batch 16, no clipping."""

    def build(backend: str, device: Any, dtype: str) -> tuple[Any, Any, Any]:
        s = _course(
            "adding-problem",
            backend,
            device,
            dtype,
            cell=cell,
            hidden_size=8,
            steps=10,
            batch_size=16,
            clip=None,
        )
        net = networks.adding_network(cell=s.cell, hidden_size=s.hidden_size, **s.placement())
        stream = datasets.AddingProblemStream(s.batch_size, steps=s.steps, seed=SEED)
        return net, s.make_optimizer(), stream

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


LAZY_STEPS = 20
"""Steps a lazy backend (``Backend.lazy``) runs instead of the run's own: on dask every
step of these tiny batches is a task graph (about half a second a step on a 2-core
machine), so its rows compare the first 20 steps with a NumPy reference of the same 20
steps."""

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
