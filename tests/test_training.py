"""Training runs: the notebooks' networks reach their goals, runs in pieces equal one run,
what ``train`` returns, and divergence is caught."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.course import notebooks, printouts
from xpnn.course.settings import BinaryAddition, Sine, SineWave
from xpnn.optim import clip_by_global_norm
from xpnn.training.loop import train
from xpnn.training.state import TrainState


@pytest.mark.slow  # 10000 iterations
def test_binary_addition_notebook_reaches_100_percent(backend, device):
    """Notebook 3_1's defaults (2-16-1, sigmoid, std-1 weights, lr 0.1, batch 1), seed 0.

    With seed 0 the network first adds all 16384 pairs exactly at 6250 iterations and
    keeps doing so from 8000 on (checked every 250); the notebook's 10000 are asserted.
    """
    result = notebooks.binary_addition(BinaryAddition(backend=backend, device=device), echo=None)
    assert {k: result.metrics[k] for k in ("exact", "total")} == {"exact": 16384, "total": 16384}
    assert [i for i, _ in result.train.history][:3] == [0, 100, 200]
    assert result.train.history[-1][0] == 9999


@pytest.mark.oracle
def test_batched_binary_addition_reaches_100_percent(backend, device):
    """Batch 64 with lr 4.0 (the loss is a batch mean, so a batch needs a larger step):
    500 iterations, 32000 sequences, against the notebook's 10000."""
    result = notebooks.binary_addition(
        BinaryAddition(batch_size=64, lr=4.0, iters=500, backend=backend, device=device),
        echo=None,
    )
    assert result.metrics["exact"] == 16384


def test_sine_notebook_test_error_and_its_fading_continuation(backend, device):
    """Notebook 3_3 (1-5-1 tanh, std 0.01, lr 0.1, 500 iterations, maxlen 2).

    The bound: predicting 0 on the held-out windows gives mean(sin^2) = 0.499; the
    network must do 100 times better, test MSE below 0.005. (It does not beat the
    'repeat the last value' predictor, 0.00199, at these settings: see docs/course.md.)
    Its continuation fades to a constant: its amplitude over its last period is near 0
    (a sine's is 1), and the hint names sine-wave.
    """
    metrics = notebooks.sine(Sine(backend=backend, device=device), echo=None).metrics
    assert metrics["test_mse"] < 0.005
    assert len(metrics["generated"]) == 200
    assert np.all(np.isfinite(metrics["generated"]))
    assert metrics["generated_amplitude"] < 0.1
    assert "xpnn train sine-wave" in printouts.sine_hint(metrics)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_divergence_stops_with_a_message_and_keeps_finite_params():
    net = xpnn.RNN(2, 16, 1, hidden="relu", output="identity")
    stream = datasets.BinaryAdditionStream(1, seed=0)
    with pytest.raises(xpnn.TrainingDiverged, match=r"diverged.*lower learning rate") as info:
        train(net, xpnn.SGD(50.0), stream, iters=2000, log_every=10)
    assert info.value.iteration > 0
    for value in net.params.values():
        assert np.all(np.isfinite(value))
    for key, value in info.value.params.items():
        np.testing.assert_array_equal(net.params[key], value)
    assert all(np.isfinite(loss) for _, loss in info.value.history)


@pytest.mark.oracle
def test_clip_by_global_norm(backend, device):
    xp = xpnn.get_namespace(backend)
    net = xpnn.MLP([2, 2], backend=backend, device=device)
    grads = {"a": net.asarray([[3.0, 0.0]]), "b": net.asarray([4.0])}  # norm 5
    clipped = clip_by_global_norm(grads, 1.0, xp)
    np.testing.assert_allclose(xpnn.to_numpy(clipped["a"]), [[0.6, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(xpnn.to_numpy(clipped["b"]), [0.8], rtol=1e-15)
    same = clip_by_global_norm(grads, 10.0, xp)
    np.testing.assert_array_equal(xpnn.to_numpy(same["b"]), [4.0])


def test_resumed_ranges_equal_one_run():
    """Training in pieces, each resumed from the last one's ``TrainState`` and cut across
    the stream's chunks of 128 iterations, gives one run's parameters and optimiser state,
    bit for bit."""
    stream = datasets.BinaryAdditionStream(2, seed=3)
    one = xpnn.RNN(2, 8, 1, seed=1)
    whole = train(one, xpnn.Adam(0.01), stream, iters=300)
    pieces, result = xpnn.RNN(2, 8, 1, seed=1), None
    for stop in (77, 128, 129, 300):
        result = train(pieces, xpnn.Adam(0.01), stream, iters=stop, resume_from=result)
    for key in one.params:
        np.testing.assert_array_equal(pieces.params[key], one.params[key])
    for key, value in whole.opt_state.items():
        np.testing.assert_array_equal(result.opt_state[key], value)


@pytest.mark.slow
def test_sine_wave_generates_a_sine(backend, device):
    """The sine-wave variant's continuation oscillates with the sine's amplitude (1) to
    within 20% and stays close to it (MSE 0.046 measured on NumPy, seed 0)."""
    wave = notebooks.sine(SineWave(backend=backend, device=device), echo=None).metrics
    assert 0.8 < wave["generated_amplitude"] < 1.2
    assert wave["generated_mse"] < 0.1
    assert printouts.sine_hint(wave) is None


@pytest.mark.jax_covering  # XLA's relu(NaN) is 0: the JAX case is the point
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_one_nan_sample_restores_the_last_finite_readings_params(backend, device):
    """A NaN sample makes W1 NaN. Under jax.jit, XLA computes relu(NaN) as 0, so the loss
    stays finite while W1 is NaN: the readings check the parameters too, and every
    backend, compiled or not, ends with the last finite reading's parameters."""
    x, d = datasets.linear(50, seed=0)
    x = np.array(x)
    x[7, 0] = np.nan  # drawn at iterations 5 and 97 of this stream
    stream = datasets.SampleStream(x, d, 1, seed=1)
    net = xpnn.MLP([2, 4, 1], hidden="relu", output="identity", loss="mse", backend=backend)
    with pytest.raises(xpnn.TrainingDiverged) as info:
        train(net, xpnn.SGD(0.01), stream, iters=300, log_every=10)
    assert info.value.good_step == 0
    assert [i for i, _ in info.value.history] == [0]
    for key, value in info.value.params.items():
        assert np.all(np.isfinite(xpnn.to_numpy(value)))
        np.testing.assert_array_equal(xpnn.to_numpy(net.params[key]), xpnn.to_numpy(value))


@pytest.mark.parametrize(
    ("history", "error"),
    [
        (5, xpnn.XpnnTypeError),
        ("abc", xpnn.XpnnTypeError),
        ([(0, 1.0), 7], xpnn.XpnnValueError),  # not a pair
        ([(0, float("nan"))], xpnn.XpnnValueError),
        ([(3, 1.0), (2, 1.0)], xpnn.XpnnValueError),  # not increasing
        ([(10, 1.0)], xpnn.XpnnValueError),  # not below the state's step
    ],
)
def test_train_refuses_a_history_that_is_not_readings(history, error):
    net = xpnn.MLP([2, 2, 1], output="identity", loss="mse")
    x, d = datasets.linear(8, seed=0)
    stream = datasets.SampleStream(x, d, 2)
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(error) as info:
        train(
            net,
            xpnn.SGD(0.1),
            stream,
            iters=20,
            resume_from=TrainState(10, net.params, None, history),
        )
    assert info.value.argument == "history"
    for key, value in before.items():
        np.testing.assert_array_equal(net.params[key], value)


def test_train_returns_a_train_state_and_trains_the_model_in_place():
    net = xpnn.MLP([2, 3, 1], output="identity", loss="mse", seed=2)
    x, d = datasets.linear(16, seed=0)
    seen: list[xpnn.TrainState] = []
    result = xpnn.train(
        net,
        xpnn.Momentum(0.01),
        datasets.SampleStream(x, d, 4),
        iters=10,
        log_every=4,
        on_step=seen.append,
        on_step_every=5,
    )
    assert isinstance(result, xpnn.TrainState) and result.step == 10
    assert [i for i, _ in result.history] == [0, 4, 8, 9]
    assert set(result.opt_state) == {f"v.{k}" for k in net.params}
    for key, value in result.params.items():  # the model trained in place, through the setter
        np.testing.assert_array_equal(net.params[key], value)
    assert [s.step for s in seen] == [5, 10]
    assert seen[0].history == result.history[:2] and seen[-1].history == result.history
    assert result.stats.compiled is False
