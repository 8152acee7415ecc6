"""The notebooks' networks and the measure of the addition RNN, shared by the notebook
runs, ``xpnn agree`` and the benchmarks."""

from __future__ import annotations

from typing import Any

from xpnn import datasets
from xpnn.backends import to_numpy
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN

ACCURACY_BATCH = 65536  # operand pairs per forward pass when measuring accuracy


def regression_network(
    *,
    hidden_size: int = 10,
    activation: str = "relu",
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
) -> MLP:
    """Notebook 1_3's 2-10-1 network: identity output, squared error, weights ``randn``."""
    return MLP(
        [2, hidden_size, 1],
        hidden=activation,
        output="identity",
        loss="mse",
        init="std",
        weight_init_std=1.0,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )


def addition_network(
    *,
    hidden_size: int = 16,
    activation: str = "sigmoid",
    init: str = "std",
    weight_init_std: float = 1.0,
    cell: str = "rnn",
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
) -> RNN:
    """Notebook 3_1's 2-16-1 RNN: sigmoid output, no biases, squared error per step.
    ``activation`` is the simple RNN's; an LSTM or GRU ``cell`` has its own."""
    return RNN(
        2,
        hidden_size,
        1,
        cell=cell,
        hidden=activation if cell == "rnn" else None,
        output="sigmoid",
        loss="mse",
        init=init,
        weight_init_std=weight_init_std,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )


def sine_network(
    *,
    hidden_size: int = 5,
    weight_init_std: float = 0.01,
    cell: str = "rnn",
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
) -> RNN:
    """Notebook 3_3's 1-5-1 many-to-one RNN: tanh hidden, identity output, squared error
    (or the same network with an LSTM or GRU ``cell``)."""
    return RNN(
        1,
        hidden_size,
        1,
        cell=cell,
        hidden="tanh",
        output="identity",
        loss="mse",
        many_to_one=True,
        init="std",
        weight_init_std=weight_init_std,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )


ADDING_MODELS: dict[str, dict[str, Any]] = {
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "rnn-tanh": {"cell": "rnn"},
    "rnn-relu": {"cell": "rnn", "hidden": "relu", "init": "std", "weight_init_std": 1.0},
    "irnn": {"cell": "rnn", "hidden": "relu", "init": "identity", "weight_init_std": 0.001},
}
"""The adding problem's networks (``adding_network(model=...)``), the four of Le, Jaitly
and Hinton's (2015) figure and the GRU: the gated cells and the tanh RNN with the adding
network's Xavier start; ``rnn-relu`` the course's "try ReLU" exercise with the course's
start (``randn``); ``irnn`` the paper's: recurrent weights at the identity, the others
``N(0, 0.001**2)``, biases 0."""


def adding_network(
    *,
    cell: str = "lstm",
    model: str | None = None,
    init_scale: float | None = None,
    hidden_size: int = 32,
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
) -> RNN:
    """The adding problem's 2-``hidden_size``-1 many-to-one network: the ``cell`` (a tanh
    state for the simple RNN), biases, identity output, squared error, Xavier weights;
    or one of ``ADDING_MODELS`` (``model``, which sets the cell and start; ``init_scale``
    is ``irnn``'s identity scale)."""
    network = {"cell": cell, "hidden": "tanh", "init": "xavier", "weight_init_std": 1.0}
    if model is not None:
        network |= ADDING_MODELS[model]
    if network["cell"] != "rnn":
        network["hidden"] = None
    return RNN(
        2,
        hidden_size,
        1,
        output="identity",
        loss="mse",
        bias=True,
        many_to_one=True,
        init_scale=init_scale,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
        **network,
    )


def addition_accuracy(net: RNN, bits: int) -> tuple[int, int]:
    """``(exact, total)``: how many of all ``4**(bits-1)`` operand pairs ``net`` adds
    with every bit right."""
    xs, ds = datasets.all_binary_additions(bits)
    exact, total = 0, ds.shape[1]
    for lo in range(0, total, ACCURACY_BATCH):  # bounded device memory at any bits
        part = slice(lo, lo + ACCURACY_BATCH)
        ys = to_numpy(net.predict(net.asarray(xs[:, part])))
        exact += int(((ys >= 0.5) == (ds[:, part] >= 0.5)).all(axis=(0, 2)).sum())
    return exact, total


def addition_loss(net: RNN, bits: int) -> float:
    """The training loss (summed over the steps, mean over the sequences) on all
    ``4**(bits-1)`` operand pairs: a fixed evaluation set, unlike one reading's batch."""
    xs, ds = datasets.all_binary_additions(bits)
    total, weighted = ds.shape[1], 0.0
    for lo in range(0, total, ACCURACY_BATCH):  # bounded device memory at any bits
        part = slice(lo, lo + ACCURACY_BATCH)
        loss = net.loss(net.asarray(xs[:, part]), net.asarray(ds[:, part]))
        weighted += float(to_numpy(loss)) * ds[:, part].shape[1]
    return weighted / total
