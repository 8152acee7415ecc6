"""The run registry: each settings class's one ``check()`` names the wrong field, and the
registry's names are the settings' own."""

from __future__ import annotations

import pytest

from xpnn.course.settings import AddingProblem, Backprop, BinaryAddition, Regression, Sine
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.course.registry import RUNS


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


@pytest.mark.parametrize(
    ("run", "settings", "error", "match"),
    [
        ("binary_addition", BinaryAddition(bits=12), XpnnValueError, "bits must be an integer"),
        ("adding_problem", AddingProblem(steps=1), XpnnValueError, "steps"),
        ("regression", Regression(resume=True), XpnnValueError, "resume and checkpoint_every"),
        ("regression", Sine(), XpnnTypeError, "settings must be a Regression, got Sine"),
    ],
)
def test_a_notebook_run_checks_its_settings_before_it_builds_anything(
    run, settings, error, match, monkeypatch
):
    """The Python entry point is a boundary: it checks the settings once, before the
    network or the data exist (the run itself would fail later, or after training)."""
    from xpnn.course import notebooks

    def built(*args, **kwargs):
        raise AssertionError("the run started with settings its check refuses")

    monkeypatch.setattr(notebooks, "train", built)
    monkeypatch.setattr(notebooks, "Checkpointer", built)
    with pytest.raises(error, match=match):
        getattr(notebooks, run)(settings, echo=None)


def test_the_registry_runs_trust_the_settings_their_callers_checked():
    """``xpnn train`` and ``xpnn sweep`` check the settings naming options and grid keys,
    then call the registry's run, which does not check them again."""
    from xpnn.course import notebooks

    assert RUNS["binary-addition"].run is notebooks.binary_addition.unchecked
    assert RUNS["adding-problem"].run is notebooks.adding_problem.unchecked
