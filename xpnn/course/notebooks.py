"""The course's notebooks as functions: what ``xpnn train ...`` runs.

Each training run takes its settings as one object (``xpnn.course.settings``, the
notebook's numbers as defaults), prints the notebook's progress lines (unless not
``progress``) and its final result through ``echo`` (``None`` for silence), and returns
its figures as a ``RunResult``.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xpnn import datasets
from xpnn.backends import compile_step, to_numpy
from xpnn.course import printouts
from xpnn.course.networks import (
    adding_network,
    addition_accuracy,
    addition_loss,
    addition_network,
    regression_network,
    sine_network,
)
from xpnn.course.settings import AddingProblem, BinaryAddition, Regression, RunPlan, Sine, Training
from xpnn.errors import TrainingDiverged, XpnnTypeError
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN
from xpnn.optim import SGD
from xpnn.training.loop import fit, starting_state
from xpnn.training.plan import Plan
from xpnn.training.resume import Checkpointer
from xpnn.training.state import LogEvent, TrainState

Echo = Callable[[str], None] | None

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
    initial = {key: to_numpy(value) for key, value in net.params.items()}
    x, d = net.asarray(BACKPROP_X, name="x"), net.asarray(BACKPROP_D, name="d")
    y, cache = net.forward(x)
    grads = net.backward(cache, d)
    core = net.core
    delta2 = core.out.delta(cache.us[1], y, d, net.xp)  # dE/du2
    delta1 = (delta2 @ net.params["W2"].T) * core.activation.derivative(
        cache.us[0], cache.zs[1], net.xp
    )  # dE/du1
    updated, _state = SGD(BACKPROP_LR).update(net.params, grads, {})
    values = {
        "u1": cache.us[0],
        "z1": cache.zs[1],
        "u2": cache.us[1],
        "y": y,
        "loss": core.loss(cache, d),
        "dE/du2": delta2,
        "dE/du1": delta1,
        **{f"grad_{k}": g for k, g in grads.items()},
        **{f"new_{k}": p for k, p in updated.items()},
    }
    host = {key: to_numpy(value) for key, value in values.items()}
    for text in printouts.backprop_sections(initial, host):
        _say(echo, text)
    return host


@dataclass
class RunResult:
    """A training run's figures: the model, the history, the wall time and the
    notebook-specific measures in ``metrics``."""

    model: Any
    train: TrainState
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)


def _runs(kind: type[Training]) -> Callable[[Callable[..., RunResult]], Any]:
    """A notebook run, taking its settings (``kind()`` when None), which it resolves
    once where they enter, before anything is built. The run itself takes the
    ``RunPlan``, as ``.planned``: ``xpnn train`` and ``xpnn sweep`` resolve the settings
    themselves, naming options and grid keys in their messages."""

    def wrap(run: Callable[..., RunResult]) -> Any:
        @functools.wraps(run)
        def resolved(settings: Training | None = None, /, **kwargs: Any) -> RunResult:
            s = kind() if settings is None else settings
            if not isinstance(s, kind):
                msg = f"settings must be a {kind.__name__}, got {type(s).__name__}"
                raise XpnnTypeError(msg, argument="settings")
            return run(s.resolve(), **kwargs)

        resolved.planned = run
        return resolved

    return wrap


def _fit(
    run: RunPlan,
    net: Any,
    stream: Any,
    on_log: Callable[[LogEvent], None],
    *,
    parallel: Any = None,
    quiet: bool = False,
) -> TrainState:
    """The run's training: ``run.training`` on ``stream``, on the workers of the
    ``distributed.Client`` ``parallel`` (a gradient source) or in this process, keeping
    ``checkpoint/checkpoint.npz`` current and resuming from it where the settings ask.
    A step that compiles says so on stderr, once, when its compile is done (unless
    ``quiet``: a run that prints nothing, such as a sweep's)."""
    s, plan = run.settings, run.training
    log = on_log if quiet else _saying_compile(plan, on_log)
    if s.checkpoint is None:
        begin = starting_state(net, plan, None)
        return fit(plan, net, stream, begin, parallel=parallel, on_log=log)
    keeper = Checkpointer(
        s.checkpoint, every=plan.on_step_every, settings=s.recorded(), resume=s.resume
    )
    return keeper.run_plan(plan, net, stream, on_log=log, parallel=parallel)


def _saying_compile(plan: Plan, on_log: Callable[[LogEvent], None]) -> Callable[[LogEvent], None]:
    """``on_log``, after saying on stderr, at the run's first reading, that the step
    compiled and how long that took."""

    def log(event: LogEvent) -> None:
        if plan.compiled and event.compile_seconds is not None:
            print(
                f"xpnn: the step compiled with {plan.compiler}: its first call took "
                f"{event.compile_seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        on_log(event)

    return log


def _wall_time(seconds: float, result: TrainState) -> str:
    """``wall time: 7.60 s (training 7.35 s)``, and the compile's share where there was one."""
    stats = result.stats
    compiled = f", the step's compile {stats.compile_seconds:.2f} s" if stats.compiled else ""
    return f"wall time: {seconds:.2f} s (training {stats.seconds:.2f} s{compiled})"


def _tester(net: RNN, xs: Any, ds: Any, compiler: str | None) -> Callable[[Any], float]:
    """The mean squared error of ``net``'s outputs for the host inputs ``xs`` ``(T, B,
    I)`` against ``ds`` (a dataset's, so unchecked), as a function of the parameters: one
    pass, compiled once where the run's step compiles (on JAX a ``lax.scan`` over the
    steps, where an eager pass dispatches every operation once a step)."""
    core = net.core
    forward = compile_step(  # a tuple out, like a step's (dask persists each item)
        lambda params, x: (core.forward(params, x)[0],), net.backend, compiler, device=net.device
    )
    x = net.asarray(xs)

    def test_mse(params: Any) -> float:
        return float(((to_numpy(forward(params, x)[0]) - ds) ** 2).mean())

    return test_mse


@_runs(Regression)
def regression(
    run: RunPlan,
    /,
    *,
    echo: Echo = print,
    progress: bool = True,
    parallel: Any = None,
) -> RunResult:
    """Notebook 1_3: fit ``3 * x0 + 2 * x1`` with a 2-10-1 network (identity output,
    squared error), one SGD step per sample drawn with replacement; weights ``randn``
    (biases start at 0, where the notebook draws them too). ``metrics["test_mse"]`` is
    the mean squared error on ``n_test`` fresh samples."""
    s = run.settings
    shown = echo if progress else None  # where the progress lines go
    began = time.perf_counter()
    net = regression_network(
        hidden_size=s.hidden_size,
        activation=s.activation,
        **run.placement(),
    )
    x, d = datasets.linear(s.n_samples, seed=s.seed, low=s.low, high=s.high)
    stream = datasets.SampleStream(x, d, s.batch_size, seed=s.seed)

    def log(event: LogEvent) -> None:
        _say(shown, printouts.loss_line(event, ".6f"))

    result = _fit(run, net, stream, log, parallel=parallel, quiet=echo is None and not progress)
    x_test, d_test = datasets.linear(s.n_test, seed=s.seed + 1, low=s.low, high=s.high)
    pred = to_numpy(net.predict(net.asarray(x_test)))
    test_mse = float(((pred - d_test) ** 2).mean())
    seconds = time.perf_counter() - began
    _say(
        echo,
        f"test MSE on {s.n_test} fresh samples: {test_mse:.6g} "
        f"(target variance {d_test.var():.4g})\n{_wall_time(seconds, result)}",
    )
    metrics = {"test_mse": test_mse, "target_variance": float(d_test.var())}
    return RunResult(net, result, seconds, metrics)


@_runs(BinaryAddition)
def binary_addition(
    run: RunPlan,
    /,
    *,
    echo: Echo = print,
    progress: bool = True,
    on_reading: Callable[[RNN, LogEvent], None] | None = None,
    parallel: Any = None,
) -> RunResult:
    """Notebook 3_1: a 2-16-1 RNN (sigmoid hidden and output, no biases, squared error
    per step) learns ``bits``-bit addition from fresh random operands every iteration.

    Every ``log_every`` iterations it prints the notebook's lines for the batch's first
    sequence, and calls ``on_reading(net, event)`` if given (``xpnn sweep`` finds the
    first reading with every operand pair exact). ``metrics`` holds ``exact`` and
    ``total`` over all operand pairs, and ``eval_loss``, the loss over all of them.
    """
    s = run.settings
    shown = echo if progress else None  # where the progress lines go
    began = time.perf_counter()
    net = addition_network(
        hidden_size=s.hidden_size,
        activation=s.activation,
        init=s.init,
        weight_init_std=s.weight_init_std,
        cell=s.cell,
        **run.placement(),
    )
    stream = datasets.BinaryAdditionStream(s.batch_size, bits=s.bits, seed=s.seed)

    def log(event: LogEvent) -> None:
        if shown is not None:
            shown(printouts.addition_lines(event))
        if on_reading is not None:
            net.params = event.params  # the reading's parameters (train sets them at the end)
            on_reading(net, event)

    result = _fit(run, net, stream, log, parallel=parallel, quiet=echo is None and not progress)
    exact, total = addition_accuracy(net, s.bits)
    seconds = time.perf_counter() - began
    _say(
        echo,
        f"exact on all {total} operand pairs: {exact}/{total} "
        f"({100.0 * exact / total:.2f}%)\n{_wall_time(seconds, result)}",
    )
    metrics = {"exact": exact, "total": total, "eval_loss": addition_loss(net, s.bits)}
    return RunResult(net, result, seconds, metrics)


@_runs(Sine)
def sine(
    run: RunPlan,
    /,
    *,
    echo: Echo = print,
    progress: bool = True,
    parallel: Any = None,
) -> RunResult:
    """Notebook 3_3: a 1-5-1 many-to-one RNN (tanh hidden, identity output) predicts the
    next value of a sine wave from ``maxlen`` values, then continues the wave ``n_generate``
    points from its own predictions.

    ``metrics``: ``test_mse`` on the held-out windows, ``generated`` (the continuation),
    ``generated_mse`` against the true ``sin`` continuation and ``generated_amplitude``,
    half the range of its last period (about 100 points; a sine's is 1, a continuation
    that fades to a constant has nearly 0).
    """
    s = run.settings
    shown = echo if progress else None  # where the progress lines go
    began = time.perf_counter()
    net = sine_network(
        hidden_size=s.hidden_size,
        weight_init_std=s.weight_init_std,
        cell=s.cell,
        **run.placement(),
    )
    data = datasets.sine_windows(s.maxlen)
    stream = datasets.SampleStream(
        data.xs_train, data.ds_train, s.batch_size, seed=s.seed, batch_axis=1, target_axis=0
    )

    def log(event: LogEvent) -> None:
        _say(shown, printouts.loss_line(event, ".6g"))

    result = _fit(run, net, stream, log, parallel=parallel, quiet=echo is None and not progress)
    test_pred = to_numpy(net.predict(net.asarray(data.xs_test)))
    test_mse = float(((test_pred - data.ds_test) ** 2).mean())
    window, generated = list(data.f[-s.maxlen :]), []
    for _ in range(s.n_generate):
        xs = net.asarray([[[v]] for v in window[-s.maxlen :]])
        generated.append(float(to_numpy(net.predict(xs))[0, 0]))
        window.append(generated[-1])
    step = data.t[1] - data.t[0]
    truth = [float(v) for v in datasets.sine_continuation(data.t[-1], step, s.n_generate)]
    last_period = generated[-round(2 * math.pi / step) :]
    generated_mse = sum((g - t) ** 2 for g, t in zip(generated, truth, strict=False)) / len(truth)
    seconds = time.perf_counter() - began
    _say(
        echo,
        f"test MSE on {data.ds_test.shape[0]} held-out windows: {test_mse:.6g}\n"
        f"generated {s.n_generate} points; MSE against the true sine: {generated_mse:.6g}\n"
        f"{_wall_time(seconds, result)}",
    )
    return RunResult(
        net,
        result,
        seconds,
        {
            "test_mse": test_mse,
            "generated": generated,
            "generated_mse": generated_mse,
            "generated_amplitude": (max(last_period, default=0.0) - min(last_period, default=0.0))
            / 2,
            "test_pred": test_pred[:, 0].tolist(),
        },
    )


@_runs(AddingProblem)
def adding_problem(
    run: RunPlan,
    /,
    *,
    echo: Echo = print,
    progress: bool = True,
    parallel: Any = None,
) -> RunResult:
    """The adding problem (Hochreiter and Schmidhuber, 1997): a many-to-one network with
    an LSTM, GRU or simple RNN ``cell`` learns to sum the two marked values of sequences
    of ``steps`` steps, from fresh sequences every iteration.

    ``metrics``: ``test_mse``, the mean squared error on ``n_test`` fresh sequences, and
    ``baseline_mse``, that of always predicting the mean sum 1 (about 0.167): a network
    that forgets the marked values does no better than the baseline. With ``eval_every``,
    ``curve``: ``[iteration, test MSE]`` every ``eval_every`` iterations and at the end
    (to the last finite reading, where the run diverges).
    """
    s = run.settings
    shown = echo if progress else None  # where the progress lines go
    began = time.perf_counter()
    net = adding_network(
        cell=s.cell or "lstm",
        model=s.model,
        init_scale=s.init_scale,
        hidden_size=s.hidden_size,
        **run.placement(),
    )
    stream = datasets.AddingProblemStream(s.batch_size, s.steps, seed=s.seed)
    xs, ds = datasets.adding_problem(s.n_test, s.steps, seed=s.seed + 1)
    test_mse = _tester(net, xs, ds, run.training.compiler)
    curve: list[list[float]] = []

    def log(event: LogEvent) -> None:
        _say(shown, printouts.loss_line(event, ".6g"))
        if s.eval_every is not None and event.iteration % s.eval_every == 0:
            curve.append([event.iteration, test_mse(event.params)])

    metrics: dict[str, Any] = {"curve": curve} if s.eval_every is not None else {}
    try:
        result = _fit(run, net, stream, log, parallel=parallel, quiet=echo is None and not progress)
    except TrainingDiverged as exc:
        exc.metrics = metrics  # the curve to the last finite reading
        raise
    final = test_mse(net.params)
    if s.eval_every is not None:
        curve.append([s.iters, final])
    baseline_mse = float(((ds - 1.0) ** 2).mean())
    seconds = time.perf_counter() - began
    _say(
        echo,
        f"test MSE on {s.n_test} fresh sequences of {s.steps} steps: {final:.4g} "
        f"(always predicting 1: {baseline_mse:.4g})\n{_wall_time(seconds, result)}",
    )
    metrics |= {"test_mse": final, "baseline_mse": baseline_mse}
    return RunResult(net, result, seconds, metrics)
