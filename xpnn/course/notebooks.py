"""The course's notebooks as functions: what ``xpnn train ...`` runs.

Each takes the notebook's numbers as defaults, prints the notebook's progress lines
through ``echo`` (``None`` for silence) and returns its figures as a result object.

The training runs also take ``momentum`` (Momentum instead of plain SGD), ``checkpoint``
(a folder where ``checkpoint.npz`` is kept current), ``checkpoint_every`` (iterations
between saves, default ``log_every``) and ``resume`` (continue from that checkpoint; the
run's settings must match, and it ends bit for bit where an uninterrupted run would).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xpnn import datasets
from xpnn.backend import to_numpy
from xpnn.errors import XpnnValueError
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN
from xpnn.optim import SGD, Momentum
from xpnn.training.resume import Checkpointer
from xpnn.training.train import LogEvent, TrainResult, train

Echo = Callable[[str], None] | None
Folder = str | os.PathLike[str] | None

# Seed 001: a 2-3-2 network, ReLU hidden layer, softmax output, one SGD step.
BACKPROP_PARAMS = {
    "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
    "b1": [0.1, 0.2, 0.3],
    "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
    "b2": [0.1, 0.2],
}
BACKPROP_X, BACKPROP_D, BACKPROP_LR = [[1.0, 5.0]], [[0.0, 1.0]], 0.01


def _say(echo: Echo, text: str) -> None:
    if echo is not None:
        echo(text)


def backprop_step(
    *, backend: str = "numpy", device: Any = None, dtype: str = "float64", echo: Echo = print
) -> dict[str, Any]:
    """Seed 001: one forward pass, one backward pass and one SGD step of the 2-3-2
    network, printed with the notebook's labels. Returns every value as host arrays."""
    net = MLP.from_params(
        BACKPROP_PARAMS,
        hidden="relu",
        output="softmax",
        loss="cross_entropy",
        backend=backend,
        device=device,
        dtype=dtype,
    )
    x, d = net.asarray(BACKPROP_X, name="x"), net.asarray(BACKPROP_D, name="d")
    y, cache = net.forward(x)
    grads = net.backward(cache, d)
    delta2 = net._out.delta(cache.us[1], y, d, net.xp)  # dE/du2
    delta1 = net.xp.matmul(delta2, net.params["W2"].T) * net._activation.derivative(
        cache.us[0], cache.zs[1], net.xp
    )  # dE/du1
    updated, _state = SGD(BACKPROP_LR).update(net.params, grads, {})
    values = {
        "u1": cache.us[0],
        "z1": cache.zs[1],
        "u2": cache.us[1],
        "y": y,
        "loss": net._loss_value(cache, d),
        "dE/du2": delta2,
        "dE/du1": delta1,
        **{f"grad_{k}": g for k, g in grads.items()},
        **{f"new_{k}": p for k, p in updated.items()},
    }
    host = {key: to_numpy(value) for key, value in values.items()}
    sections = [
        (
            "##### ネットワークの初期化 #####",
            [
                ("重み1", to_numpy(net.params["W1"])),
                ("重み2", to_numpy(net.params["W2"])),
                ("バイアス1", to_numpy(net.params["b1"])),
                ("バイアス2", to_numpy(net.params["b2"])),
            ],
        ),
        (
            "##### 順伝播開始 #####",
            [
                ("総入力1 (u1)", host["u1"]),
                ("中間層出力1 (z1)", host["z1"]),
                ("総入力2 (u2)", host["u2"]),
                ("出力1 (y)", host["y"]),
            ],
        ),
        (
            "##### 誤差逆伝播開始 #####",
            [
                ("偏微分_dE/du2", host["dE/du2"]),
                ("偏微分_dE/du1", host["dE/du1"]),
                ("偏微分_重み1", host["grad_W1"]),
                ("偏微分_重み2", host["grad_W2"]),
                ("偏微分_バイアス1", host["grad_b1"]),
                ("偏微分_バイアス2", host["grad_b2"]),
            ],
        ),
        (
            "##### 更新後パラメータ #####",
            [
                ("重み1", host["new_W1"]),
                ("重み2", host["new_W2"]),
                ("バイアス1", host["new_b1"]),
                ("バイアス2", host["new_b2"]),
            ],
        ),
    ]
    for title, rows in sections:
        _say(echo, title)
        for label, value in rows:
            _say(echo, f"*** {label} ***\n{value}\n")
        if title.startswith("##### 順伝播"):
            _say(echo, f"出力合計: {host['y'].sum():.8g}\n誤差 (cross-entropy): {host['loss']}\n")
    return host


def _fit(
    net: Any,
    stream: Any,
    *,
    lr: float,
    momentum: float | None,
    settings: Mapping[str, Any],
    checkpoint: Folder,
    checkpoint_every: int | None,
    resume: bool,
    **kwargs: Any,
) -> TrainResult:
    """``train`` with SGD (or Momentum), keeping ``checkpoint/checkpoint.npz`` current
    every ``checkpoint_every`` iterations (default: ``log_every``) and resuming from it
    when ``resume``; ``settings`` are what a resumed run must share with the first."""
    optimizer = SGD(lr) if momentum is None else Momentum(lr, momentum)
    if checkpoint is None:
        if resume or checkpoint_every is not None:
            msg = "resume and checkpoint_every need a checkpoint folder"
            raise XpnnValueError(msg)
        return train(net, optimizer, stream, **kwargs)
    keeper = Checkpointer(
        checkpoint,
        every=kwargs["log_every"] if checkpoint_every is None else checkpoint_every,
        settings={**settings, "momentum": momentum},
        resume=resume,
    )
    return keeper.run(net, optimizer, stream, **kwargs)


@dataclass
class RunResult:
    """A training run's figures: the model, the history, the wall time and the
    notebook-specific measures in ``metrics``."""

    model: Any
    train: TrainResult
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)


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


def regression(
    *,
    iters: int = 1000,
    lr: float = 0.07,
    hidden_size: int = 10,
    activation: str = "relu",
    n_samples: int = 100_000,
    n_test: int = 1000,
    low: float = 0.0,
    high: float = 1.0,
    batch_size: int = 1,
    log_every: int = 100,
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
    echo: Echo = print,
    momentum: float | None = None,
    checkpoint: Folder = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> RunResult:
    """Notebook 1_3: fit ``3 * x0 + 2 * x1`` with a 2-10-1 network (identity output,
    squared error), one SGD step per sample drawn with replacement; weights ``randn``
    (biases start at 0, where the notebook draws them too). ``metrics["test_mse"]`` is
    the mean squared error on ``n_test`` fresh samples."""
    began = time.perf_counter()
    net = regression_network(
        hidden_size=hidden_size,
        activation=activation,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )
    x, d = datasets.linear(n_samples, seed=seed, low=low, high=high)
    stream = datasets.SampleStream(x, d, batch_size, seed=seed)

    def log(event: LogEvent) -> None:
        _say(echo, f"iters:{event.iteration} loss:{event.loss:.6f}")

    settings = {
        "run": "regression",
        "lr": lr,
        "batch_size": batch_size,
        "hidden_size": hidden_size,
        "activation": activation,
        "n_samples": n_samples,
        "low": low,
        "high": high,
        "seed": seed,
    }
    result = _fit(
        net,
        stream,
        lr=lr,
        momentum=momentum,
        settings=settings,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        iters=iters,
        log_every=log_every,
        on_log=log,
    )
    x_test, d_test = datasets.linear(n_test, seed=seed + 1, low=low, high=high)
    pred = to_numpy(net.predict(net.asarray(x_test)))
    test_mse = float(((pred - d_test) ** 2).mean())
    _say(
        echo,
        f"test MSE on {n_test} fresh samples: {test_mse:.6g} (target variance {d_test.var():.4g})",
    )
    return RunResult(
        net,
        result,
        time.perf_counter() - began,
        {"test_mse": test_mse, "target_variance": float(d_test.var())},
    )


ACCURACY_BATCH = 65536  # operand pairs per forward pass when measuring accuracy


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


def addition_network(
    *,
    hidden_size: int = 16,
    activation: str = "sigmoid",
    init: str = "std",
    weight_init_std: float = 1.0,
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
) -> RNN:
    """Notebook 3_1's 2-16-1 RNN: sigmoid output, no biases, squared error per step."""
    return RNN(
        2,
        hidden_size,
        1,
        hidden=activation,
        output="sigmoid",
        loss="mse",
        init=init,
        weight_init_std=weight_init_std,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )


def binary_addition(
    *,
    iters: int = 10_000,
    batch_size: int = 1,
    lr: float = 0.1,
    hidden_size: int = 16,
    activation: str = "sigmoid",
    init: str = "std",
    weight_init_std: float = 1.0,
    bits: int = 8,
    truncate: int | None = None,
    clip: float | None = None,
    log_every: int = 100,
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
    echo: Echo = print,
    momentum: float | None = None,
    checkpoint: Folder = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> RunResult:
    """Notebook 3_1: a 2-16-1 RNN (sigmoid hidden and output, no biases, squared error
    per step) learns ``bits``-bit addition from fresh random operands every iteration.

    Every ``log_every`` iterations it prints the notebook's lines for the batch's first
    sequence. ``metrics`` holds ``exact`` and ``total`` over all operand pairs.
    """
    datasets.check_bits(bits, datasets.MAX_ALL_PAIRS_BITS)  # before training, not after
    began = time.perf_counter()
    net = addition_network(
        hidden_size=hidden_size,
        activation=activation,
        init=init,
        weight_init_std=weight_init_std,
        seed=seed,
        backend=backend,
        device=device,
        dtype=dtype,
    )
    stream = datasets.BinaryAdditionStream(batch_size, bits=bits, seed=seed)

    def log(event: LogEvent) -> None:
        if echo is None:
            return
        x, d, y = (to_numpy(a[:, 0, :]) for a in (event.x, event.d, event.y))
        a, b = datasets.decode_bits(x[:, 0]), datasets.decode_bits(x[:, 1])
        pred = (y[::-1, 0] >= 0.5).astype(int)  # most significant bit first, as printed
        echo(
            f"iters:{event.iteration}\nLoss:{event.loss}\nPred:{pred}\n"
            f"True:{d[::-1, 0].astype(int)}\n{a} + {b} = {datasets.decode_bits(y[:, 0])}\n"
            "------------"
        )

    settings = {
        "run": "binary-addition",
        "lr": lr,
        "batch_size": batch_size,
        "hidden_size": hidden_size,
        "activation": activation,
        "init": init,
        "weight_init_std": weight_init_std,
        "bits": bits,
        "seed": seed,
        "truncate": truncate,
        "clip": clip,
    }
    result = _fit(
        net,
        stream,
        lr=lr,
        momentum=momentum,
        settings=settings,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        iters=iters,
        log_every=log_every,
        truncate=truncate,
        clip=clip,
        on_log=log,
    )
    exact, total = addition_accuracy(net, bits)
    seconds = time.perf_counter() - began
    _say(
        echo,
        f"exact on all {total} operand pairs: {exact}/{total} "
        f"({100.0 * exact / total:.2f}%)\nwall time: {seconds:.2f} s "
        f"(training {result.seconds:.2f} s)",
    )
    return RunResult(net, result, seconds, {"exact": exact, "total": total})


def sine(
    *,
    iters: int = 500,
    batch_size: int = 1,
    lr: float = 0.1,
    hidden_size: int = 5,
    maxlen: int = 2,
    weight_init_std: float = 0.01,
    n_generate: int = 200,
    log_every: int = 100,
    seed: int = 0,
    backend: str = "numpy",
    device: Any = None,
    dtype: str = "float64",
    echo: Echo = print,
    momentum: float | None = None,
    checkpoint: Folder = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> RunResult:
    """Notebook 3_3: a 1-5-1 many-to-one RNN (tanh hidden, identity output) predicts the
    next value of a sine wave from ``maxlen`` values, then continues the wave ``n_generate``
    points from its own predictions.

    ``metrics``: ``test_mse`` on the held-out windows, ``generated`` (the continuation)
    and ``generated_mse`` against the true ``sin`` continuation.
    """
    began = time.perf_counter()
    net = RNN(
        1,
        hidden_size,
        1,
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
    data = datasets.sine_windows(maxlen)
    stream = datasets.SampleStream(
        data.xs_train, data.ds_train, batch_size, seed=seed, batch_axis=1, target_axis=0
    )

    def log(event: LogEvent) -> None:
        _say(echo, f"iters:{event.iteration} loss:{event.loss:.6g}")

    settings = {
        "run": "sine",
        "lr": lr,
        "batch_size": batch_size,
        "hidden_size": hidden_size,
        "maxlen": maxlen,
        "weight_init_std": weight_init_std,
        "seed": seed,
    }
    result = _fit(
        net,
        stream,
        lr=lr,
        momentum=momentum,
        settings=settings,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        iters=iters,
        log_every=log_every,
        on_log=log,
    )
    test_pred = to_numpy(net.predict(net.asarray(data.xs_test)))
    test_mse = float(((test_pred - data.ds_test) ** 2).mean())
    window, generated = list(data.f[-maxlen:]), []
    for _ in range(n_generate):
        xs = net.asarray([[[v]] for v in window[-maxlen:]])
        generated.append(float(to_numpy(net.predict(xs))[0, 0]))
        window.append(generated[-1])
    step = data.t[1] - data.t[0]
    truth = [float(v) for v in datasets.sine_continuation(data.t[-1], step, n_generate)]
    generated_mse = sum((g - t) ** 2 for g, t in zip(generated, truth, strict=False)) / n_generate
    _say(
        echo,
        f"test MSE on {data.ds_test.shape[0]} held-out windows: {test_mse:.6g}\n"
        f"generated {n_generate} points; MSE against the true sine: {generated_mse:.6g}",
    )
    return RunResult(
        net,
        result,
        time.perf_counter() - began,
        {
            "test_mse": test_mse,
            "generated": generated,
            "generated_mse": generated_mse,
            "test_pred": test_pred[:, 0].tolist(),
        },
    )
