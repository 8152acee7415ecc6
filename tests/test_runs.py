"""The run registry: each settings class's one ``check()`` names the field at fault, a
notebook run checks its settings before it builds anything, and the registry's names and
runs are the settings' own."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.course import notebooks
from xpnn.course.networks import ADDING_MODELS, adding_network
from xpnn.course.registry import RUNS
from xpnn.course.settings import (
    AddingProblem,
    Backprop,
    BinaryAddition,
    Regression,
    RunPlan,
    Sine,
)
from xpnn.errors import XpnnTypeError, XpnnValueError


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        (Regression(iters=0), "iters"),
        (Regression(iters=True), "iters"),
        (Regression(lr=float("nan")), "lr"),
        (Regression(seed=-1), "seed"),
        (Regression(activation="softplus"), "activation"),
        (Regression(low=1.0, high=0.0), "low"),
        (Regression(resume=True), "checkpoint"),
        (Regression(momentum=1.0), "momentum"),
        (Regression(optimizer="adam", momentum=0.5), "momentum"),
        (Regression(compile="on"), "compile"),
        (BinaryAddition(cell="lstm", activation="tanh"), "activation"),
        (BinaryAddition(truncate=0), "truncate"),
        (BinaryAddition(bits=1), "bits"),
        (Sine(maxlen=450), "maxlen"),
        (AddingProblem(steps=1), "steps"),
        (AddingProblem(clip=-1.0), "clip"),
        (Backprop(dtype="float16"), "dtype"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_check_names_the_field_at_fault(settings, argument):
    with pytest.raises(XpnnValueError) as info:
        settings.check()
    assert info.value.argument == argument
    assert argument in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("run", list(RUNS))
def test_defaults_pass_their_check_and_the_name_is_the_settings_own(run):
    settings = RUNS[run].settings()
    settings.check()
    assert run == settings.RUN
    assert AddingProblem(clip=None).clip is None  # None is a value where the field allows it


@pytest.mark.parametrize(
    ("run", "settings", "error", "argument"),
    [
        ("binary_addition", BinaryAddition(bits=12), XpnnValueError, "bits"),
        ("adding_problem", AddingProblem(steps=1), XpnnValueError, "steps"),
        ("regression", Regression(resume=True), XpnnValueError, "checkpoint"),
        ("regression", Sine(), XpnnTypeError, "settings"),
    ],
)
def test_a_notebook_run_checks_its_settings_before_it_builds_anything(
    run, settings, error, argument, monkeypatch
):
    """The Python entry point is a boundary: it checks the settings once, before the
    network or the data exist (the run itself would fail later, or after training)."""

    def built(*args, **kwargs):
        raise AssertionError("the run started with settings its check refuses")

    builders = ("regression_network", "addition_network", "sine_network", "adding_network")
    for name in ("fit", "Checkpointer", *builders):
        monkeypatch.setattr(notebooks, name, built)
    with pytest.raises(error) as info:
        getattr(notebooks, run)(settings, echo=None)
    assert info.value.argument == argument


def test_the_registry_runs_take_the_plan_their_callers_resolved(monkeypatch):
    """``xpnn train`` and ``xpnn sweep`` resolve the settings naming options and grid
    keys, then call the registry's run with the ``RunPlan``, which it does not check
    again."""
    assert RUNS["binary-addition"].run is notebooks.binary_addition.planned
    assert RUNS["adding-problem"].run is notebooks.adding_problem.planned
    plan = Regression(iters=3, n_samples=10, n_test=5).resolve()
    assert isinstance(plan, RunPlan)
    monkeypatch.setattr(Regression, "resolve", lambda *_: pytest.fail("resolved again"))
    result = RUNS["regression"].run(plan, echo=None)
    assert result.train.step == 3


PAPER_NETWORKS = {
    "lstm": {"cell": "lstm", "init": "xavier"},
    "gru": {"cell": "gru", "init": "xavier"},
    "rnn-tanh": {"cell": "rnn", "hidden": "tanh", "init": "xavier"},
    "rnn-relu": {"cell": "rnn", "hidden": "relu", "init": "std", "weight_init_std": 1.0},
    "irnn": {"cell": "rnn", "hidden": "relu", "init": "identity", "weight_init_std": 0.001},
}
"""Le, Jaitly and Hinton's (2015) adding-problem networks, and the GRU, as docs/paper-irnn.md
states them: Xavier for the gated cells and the tanh RNN, the course's randn for the ReLU
RNN, the identity with N(0, 0.001**2) input and output weights for the IRNN."""


@pytest.mark.parametrize("model", list(PAPER_NETWORKS))
def test_the_adding_problems_models_are_the_papers_networks(model):
    assert set(ADDING_MODELS) == set(PAPER_NETWORKS)
    net = adding_network(model=model, hidden_size=5, seed=3)
    paper = xpnn.RNN(
        2, 5, 1, output="identity", loss="mse", bias=True, many_to_one=True, seed=3,
        **PAPER_NETWORKS[model],
    )  # fmt: skip
    assert (net.cell.name, net.hidden, net.init) == (paper.cell.name, paper.hidden, paper.init)
    for key, value in paper.params.items():
        np.testing.assert_array_equal(net.params[key], value)
    if model == "irnn":
        np.testing.assert_array_equal(net.params["W"], np.eye(5))
        scaled = adding_network(model=model, hidden_size=5, init_scale=0.5)
        np.testing.assert_array_equal(scaled.params["W"], 0.5 * np.eye(5))
