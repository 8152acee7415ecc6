"""The run registry: each settings class's one ``check()`` names the wrong field, and the
registry's names are the settings' own."""

from __future__ import annotations

import pytest

from xpnn.course.settings import AddingProblem, Backprop, BinaryAddition, Regression, Sine
from xpnn.errors import XpnnValueError
from xpnn.runs.registry import RUNS


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (Regression(iters=0), "iters must be at least 1, got 0"),
        (Regression(iters=True), "iters must be an integer, got True"),
        (Regression(lr=float("nan")), "lr must be positive and finite, got nan"),
        (Regression(seed=-1), "seed must be a non-negative integer, got -1"),
        (Regression(activation="softplus"), "activation must be one of relu, sigmoid, tanh"),
        (Regression(low=1.0, high=0.0), "need finite low < high"),
        (Regression(resume=True), "resume and checkpoint_every need checkpoint"),
        (Regression(momentum=1.0), "momentum must be below 1, got 1.0"),
        (Regression(optimizer="adam", momentum=0.5), "optimizer adam does not take momentum"),
        (Regression(compile="on"), "compile 'on' needs a backend that compiles"),
        (BinaryAddition(cell="lstm", activation="tanh"), "activation applies to cell rnn only"),
        (BinaryAddition(truncate=0), "truncate must be at least 1, got 0"),
        (BinaryAddition(bits=1), "bits must be an integer from 2 to"),
        (Sine(maxlen=450), "maxlen must be below"),
        (AddingProblem(steps=1), "steps"),
        (AddingProblem(clip=-1.0), "clip must be positive and finite, got -1.0"),
        (Backprop(dtype="float16"), "dtype must be one of float32, float64, got 'float16'"),
    ],
)
def test_check_names_the_wrong_field(settings, match):
    with pytest.raises(XpnnValueError, match=match.replace("(", r"\(")):
        settings.check()


@pytest.mark.parametrize("run", list(RUNS))
def test_defaults_pass_their_check_and_the_name_is_the_settings_own(run):
    settings = RUNS[run].settings()
    settings.check()
    assert run == settings.RUN
    assert AddingProblem(clip=None).clip is None  # None is a value where the field allows it
