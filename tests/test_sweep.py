"""``xpnn sweep``: bad input refused before any task is sent, rows that are the train
command's own runs, the results file, the summary; and, on a real two-process
LocalCluster (the ``distributed`` nox session), a killed worker or a killed sweep that
loses and duplicates nothing."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xpnn import cli
from xpnn.backends import backend_info
from xpnn.cli.options import parse_options
from xpnn.cli.sweep import command, tasks
from xpnn.cli.sweep.grid import MAX_RUNS, Sweep, build_sweep, identity, row_key
from xpnn.cli.sweep.report import (
    CONTINUATION,
    EVAL_LOSS,
    EXACT,
    TEST_MSE,
    ConfigSummary,
    conclusion,
    figure,
    median_curve,
    summarize,
    table,
    title,
)
from xpnn.cli.sweep.results import ResultsFile
from xpnn.course import notebooks
from xpnn.course.networks import addition_accuracy
from xpnn.course.registry import RUNS
from xpnn.course.settings import BinaryAddition, Regression, SineWave
from xpnn.errors import XpnnValueError
from xpnn.parallel import cluster as xpnn_cluster

pytest.importorskip("distributed", reason="dask.distributed is not installed (xpnn[dask])")

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster of two worker processes: nox -s distributed "
    "(or XPNN_DISTRIBUTED=1)",
)
ROOT = Path(__file__).resolve().parents[1]


def _main(argv: list[str]) -> int:
    """``xpnn`` with ``argv``: its exit status, whether returned or raised by argparse."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


def _no_tasks(*_args, **_kwargs):
    raise AssertionError("a bad sweep reached the cluster")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--grid", "foo=1,2"], "unknown grid key 'foo' for binary-addition"),
        (["--grid", "activation=sigmoid,softplus"], "activation=softplus: argument --activation"),
        (["--grid", "lr=0.1,-1"], "lr=-1: --lr must be a positive"),
        ([], "the grid is empty"),
        (["--grid", "activation=tanh", "--seeds", "0"], "--seeds: must be at least 1"),
        (["--grid", "activation="], "--grid takes KEY=V1,V2"),
        (["--grid", "seed=1,2"], "grid key 'seed' cannot be swept"),
        (["--grid", "activation=tanh", "--seed", "3"], "--seed cannot be given to a sweep"),
        (["--grid", "activation=tanh", "--bogus", "3"], "unrecognized arguments: --bogus 3"),
        (["--grid", "backend=cupy"], "backend=cupy: cupy"),
        (["--grid", "iters=5", "--iters", "4"], "--iters is both a grid key and a fixed"),
    ],
)
def test_bad_sweeps_exit_2_with_one_line_before_any_task(
    argv: list[str], expected: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    if "backend=cupy" in argv and backend_info("cupy").usable:
        pytest.skip("cupy runs here, so backend=cupy is a valid value")
    monkeypatch.setattr(command, "connect", _no_tasks)
    out = tmp_path / "s.jsonl"
    rc = _main(["sweep", "binary-addition", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err
    assert expected in err
    assert not out.exists()  # nothing was written either


def _refused(argv: list[str], tmp_path: Path, capsys) -> str:
    """``xpnn sweep binary-addition ARGV``'s one-line error; the sweep must end with exit
    status 2 before writing or sending anything."""
    out = tmp_path / "s.jsonl"
    rc = _main(["sweep", "binary-addition", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    return err


def test_repeated_grids_merge(tmp_path: Path, capsys, monkeypatch) -> None:
    def stop(*_args, **_kwargs):  # after the results file's header, before any task
        raise XpnnValueError("stopped before connecting")

    monkeypatch.setattr(command, "connect", stop)
    out = tmp_path / "s.jsonl"
    argv = ["sweep", "binary-addition", "--grid", "activation=sigmoid,tanh", "--grid"]
    assert _main([*argv, "init=std,he", "--out", str(out)]) == 2
    assert "stopped before connecting" in capsys.readouterr().err
    header = json.loads(out.read_text().splitlines()[0])["xpnn_sweep"]
    assert header["grid"] == {"activation": ["sigmoid", "tanh"], "init": ["std", "he"]}
    out.unlink()
    argv = ["--grid", "init=std", "--grid", "init=he"]
    assert "grid key 'init' is given twice" in _refused(argv, tmp_path, capsys)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("activation=tanh,tanh", "grid key 'activation' lists the value 'tanh' twice"),
        ("activation=tanh, tanh ", "grid key 'activation' lists the value 'tanh' twice"),
        ("lr=0.1,0.10", "grid key 'lr' lists the value '0.10' twice (as '0.1')"),
        ("hidden-size=8,08", "grid key 'hidden-size' lists the value '08' twice (as '8')"),
    ],
)
def test_a_value_given_twice_is_refused(item, expected, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(command, "connect", _no_tasks)
    assert expected in _refused(["--grid", item], tmp_path, capsys)


@pytest.mark.parametrize(
    "item",
    ["activation=ta\nnh", "activation=tanh,\nrelu", "activation=tanh\n", "act\nivation=tanh"],
)
def test_a_control_character_in_the_grid_is_refused_in_one_line(
    item, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(command, "connect", _no_tasks)
    err = _refused(["--grid", item], tmp_path, capsys)
    assert "holds a newline or another control character" in err


def test_values_are_checked_once_and_related_keys_together(monkeypatch) -> None:
    checked = []
    check = BinaryAddition.check

    def counted(self, label=str) -> None:
        checked.append(self)
        check(self, label)

    monkeypatch.setattr(BinaryAddition, "check", counted)
    iters, sizes = [str(n) for n in range(1, 101)], [str(n) for n in range(1, 51)]
    spec = _sweep("binary-addition", {"iters": iters, "hidden-size": sizes})
    assert len(spec.configs()) == 100 * 50
    assert len(checked) == 100 + 50  # unrelated keys: each value once
    grid = {"cell": ("rnn", "lstm"), "activation": ("sigmoid", "tanh")}
    expected = "configuration cell=lstm activation=tanh: --activation applies to --cell rnn only"
    with pytest.raises(XpnnValueError, match=expected):
        _sweep("binary-addition", grid)
    spec = _sweep("regression", {"low": ("2", "3"), "high": ("5", "6")})  # each pair valid
    assert len(spec.configs()) == 4
    with pytest.raises(
        XpnnValueError, match="configuration low=2 high=1: --low: need finite low < high"
    ):
        _sweep("regression", {"low": ("0", "2"), "high": ("1", "3")})


def _no_configurations(*_args, **_kwargs):
    raise AssertionError("a sweep too large to run was expanded into configurations")


@pytest.mark.parametrize(
    ("argv", "configs", "seeds"),
    [
        (["hidden-size=" + ",".join(str(n) for n in range(1, 1001))], 1000 * 1000, 1),
        (["init=std", "--seeds", "100000000000"], 1000, 100_000_000_000),
    ],
)
def test_a_sweep_too_large_to_finish_is_refused_before_anything_is_made(
    argv, configs, seeds, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(command, "connect", _no_tasks)
    for method in ("configs", "tasks"):
        monkeypatch.setattr(Sweep, method, _no_configurations)
    iters = "iters=" + ",".join(str(n) for n in range(1, 1001))
    err = _refused(["--grid", iters, *argv], tmp_path, capsys)
    runs = configs * seeds
    expected = f"the sweep has {runs} runs ({configs} configuration(s) x {seeds} seed(s))"
    assert expected in err
    assert f"one sweep takes at most {MAX_RUNS}" in err


def test_an_unreachable_scheduler_fails_in_time_naming_the_address(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(xpnn_cluster, "CONNECT_TIMEOUT", 1)
    address = f"tcp://127.0.0.1:{port}"
    argv = ["sweep", "sine", "--grid", "lr=0.1", "--scheduler", address]
    rc = cli.main([*argv, "--out", str(tmp_path / "s.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == f"xpnn sweep: error: cannot reach the dask scheduler at '{address}' " + (
        "within 1 s (ConnectionRefusedError)"
    )


def test_without_dask_the_sweep_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    rc = cli.main(["sweep", "sine", "--grid", "lr=0.1", "--out", str(tmp_path / "s.jsonl")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert 'pip install "xpnn[dask]"' in err


def _sweep(run: str, grid: dict[str, tuple[str, ...]], options=(), seeds: int = 1) -> Sweep:
    items = [f"{key}={','.join(values)}" for key, values in grid.items()]
    return build_sweep(argparse.Namespace(run=run, grid=items, seeds=seeds), list(options))


def test_a_results_file_of_another_sweep_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "s.jsonl"
    first = _sweep("sine", {"lr": ("0.1", "0.2")}, ["--iters", "5"])
    ResultsFile(path, identity(first)).close()
    header = path.read_text()
    others = {
        "of 'sine', not regression": _sweep("regression", {"lr": ("0.1", "0.2")}, ["--iters", "5"]),
        "its grid is": _sweep("sine", {"lr": ("0.1", "0.3")}, ["--iters", "5"]),
        "its options differ: iters 5 there, 6 here": _sweep(
            "sine", {"lr": ("0.1", "0.2")}, ["--iters", "6"]
        ),
    }
    for expected, other in others.items():
        with pytest.raises(XpnnValueError, match="holds the results of another sweep") as e:
            ResultsFile(path, identity(other))
        assert expected in str(e.value)
    assert path.read_text() == header  # not mixed, not touched
    same = _sweep("sine", {"lr": ("0.1", "0.2")}, ["--iters=5"], seeds=3)  # more seeds: same
    with ResultsFile(path, identity(same)) as results:
        assert results.rows == {}
    monkeypatch.setattr(command, "connect", _no_tasks)
    argv = ["sweep", "sine", "--grid", "lr=0.1,0.3", "--iters", "5", "--out", str(path)]
    assert cli.main(argv) == 2
    assert "another sweep" in capsys.readouterr().err


def _full_row(config: dict[str, str], seed: int, **fields) -> dict:
    """A complete results row of ``config`` and ``seed``, ``fields`` changed."""
    row = {"final_loss": 1.0, "diverged_at": None, "first_exact": None, "metrics": {}}
    return {"config": config, "seed": seed, **row, "seconds": 0.5, "worker": "local", **fields}


def test_a_line_cut_short_by_a_kill_is_dropped_and_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    ident = identity(_sweep("sine", {"lr": ("0.1",)}))
    with ResultsFile(path, ident) as results:
        results.append(_full_row({"lr": "0.1"}, 0, final_loss=1.5))
    with path.open("a") as f:
        f.write('{"config": {"lr": "0.1"}, "seed": 1, "fin')  # the sweep died here
    with ResultsFile(path, ident) as again:
        assert list(again.rows) == [row_key({"lr": "0.1"}, 0)]
        assert again.ignored == []
        again.append(_full_row({"lr": "0.1"}, 1, final_loss=2.5))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["seed"] for line in lines[1:]] == [0, 1]


def test_a_file_that_is_not_a_sweep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("hello\n")
    with pytest.raises(XpnnValueError, match="is not an xpnn sweep results file"):
        ResultsFile(path, identity(_sweep("sine", {"lr": ("0.1",)})))


def _train_json(argv: list[str], capsys) -> dict:
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv",
    [
        ["binary-addition", "--bits", "3", "--batch-size", "8", "--iters", "150", "--lr", "1"],
        ["regression", "--iters", "120", "--activation", "tanh"],
        ["sine", "--iters", "60", "--maxlen", "3"],
    ],
)
def test_a_sweep_row_is_the_train_commands_run_to_the_bit(argv: list[str], capsys) -> None:
    row = tasks.run_one(parse_options(RUNS[argv[0]].settings, [*argv[1:], "--seed", "2"]))
    alone = _train_json(["train", *argv, "--seed", "2"], capsys)
    assert row["final_loss"] == alone["losses"][-1][1]
    for key, value in row["metrics"].items():
        assert value == alone[key]


def test_first_exact_is_the_first_reading_with_every_pair_right() -> None:
    settings = BinaryAddition(bits=3, batch_size=16, iters=2000, lr=1.0, log_every=50)
    row = tasks.run_one(settings)
    readings = []  # independently: count every pair at every reading, no shortcut

    def count(net, event) -> None:
        readings.append((event.iteration, addition_accuracy(net, 3)))

    notebooks.binary_addition(settings, echo=None, on_reading=count)
    first = next(i for i, (exact, total) in readings if exact == total)
    assert row["first_exact"] == first


def test_a_diverging_run_is_a_result() -> None:
    row = tasks.run_one(Regression(lr=5.0, iters=300, seed=0))
    assert row["diverged_at"] is not None
    assert row["final_loss"] is None


def _row(config, seed, loss, first=None, diverged=None, exact=True):
    metrics = {"exact": 4 if first else 3, "total": 4} if exact else {"test_mse": loss / 10}
    if exact and loss is not None:
        metrics["eval_loss"] = loss / 100  # the loss on all pairs, apart from the last reading
    row = {"config": config, "seed": seed, "final_loss": loss, "first_exact": first}
    row["diverged_at"] = diverged
    return {**row, "metrics": {} if diverged is not None else metrics}


def test_the_summary_counts_medians_and_divergences() -> None:
    a, b = {"act": "tanh"}, {"act": "relu"}
    rows = [
        _row(a, 0, 10.0, first=300),
        _row(a, 1, 30.0, first=100),
        _row(a, 2, 50.0),
        _row(b, 0, None, diverged=12),
        _row(b, 1, 90.0),
    ]
    tanh, relu = summarize([a, b], rows)
    assert tanh == ConfigSummary(a, 3, 2, (300, 100), 0.3, EXACT, (1.0, 1.0, 0.75), 0)
    assert tanh.median_first_exact == 200
    assert relu == ConfigSummary(b, 2, 0, (), 0.9, EXACT, (0.75,), 1)
    text = table([tanh, relu], ["act"]).splitlines()
    assert text[0].split()[:3] == ["act", "runs", "reached"]
    assert "median loss on all pairs" in text[0]
    assert text[1].split() == ["tanh", "3", "2/3", "(67%)", "200", "0.3", "100.0%", "0"]
    assert text[2].split() == ["relu", "2", "0/2", "(0%)", "-", "0.9", "75.0%", "1"]


def test_the_conclusion_names_what_learned_how_fast_and_what_did_not() -> None:
    a, b, c = {"act": "sigmoid"}, {"act": "tanh"}, {"act": "relu"}
    rows = [_row(a, s, 1.0, first=f) for s, f in enumerate((500, 700, 900))]
    rows += [_row(b, 0, 1.0, first=400), _row(b, 1, 1.0)]
    rows += [_row(c, s, 1.0) for s in range(3)]
    text = conclusion(summarize([a, b, c], rows)).splitlines()
    assert text == [
        "Every seed learned to add all pairs exactly with act=sigmoid (700): median "
        "iterations to get there in brackets, fastest first.",
        "Some seeds learned with act=tanh (1/2 seeds).",
        "No seed learned with act=relu; the best of these, act=relu, adds 75.0% of the "
        "pairs exactly (median).",
    ]


def test_the_title_carries_the_options_every_run_shares() -> None:
    options = {"iters": 10000, "lr": 0.1, "batch_size": 1, "hidden_size": 16}
    assert title("binary-addition", options, 3) == (
        "xpnn sweep binary-addition: 10000 iterations, lr 0.1, batch 1, 3 seeds"
    )


@pytest.mark.parametrize(
    ("settings", "score", "metric"),
    [
        (Regression(iters=30, n_samples=1000), TEST_MSE, "test_mse"),
        (SineWave(iters=30, n_generate=20), CONTINUATION, "generated_mse"),
    ],
    ids=["regression", "sine-wave"],
)
def test_runs_without_exact_answers_are_ranked_by_their_own_measure(
    settings, score: str, metric: str, tmp_path: Path
) -> None:
    """No "reached 100%" column where no answer can be exact: regression is ranked by its
    test MSE, sine-wave by its continuation's MSE against the sine."""
    configs = [{"lr": "0.05"}, {"lr": "0.1"}]
    rows = [
        {"config": c, "seed": 0, **tasks.run_one(dataclasses.replace(settings, lr=float(c["lr"])))}
        for c in configs
    ]
    summaries = summarize(configs, rows)
    assert [s.score for s in summaries] == [score, score]
    assert [s.scores for s in summaries] == [(r["metrics"][metric],) for r in rows]
    head = table(summaries, ["lr"]).splitlines()[0]
    assert f"median {score}" in head
    assert "reached" not in head and "100%" not in head and EVAL_LOSS not in head
    assert conclusion(summaries).startswith(f"Lowest median {score}: ")
    for drawn, name in (
        (summaries, "mse.png"),
        (summarize(configs[:1], [_row(configs[0], 0, 0.1, first=9)]), "x.png"),
    ):
        figure(drawn, tmp_path / name, title="t")
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_adding_problems_test_curve_is_kept_summarised_and_drawn(tmp_path: Path, capsys):
    """--eval-every: the test MSE every N iterations and at the end, in the sweep row as in
    the train command's JSON; the summary keeps each seed's curve, the median is taken
    where the curves reach, and the figure draws them (the IRNN paper's figure)."""
    argv = ["adding-problem", "--model", "irnn", "--steps", "5", "--hidden-size", "4"]
    argv += ["--batch-size", "4", "--iters", "20", "--log-every", "5", "--eval-every", "10"]
    argv += ["--n-test", "20"]
    row = tasks.run_one(parse_options(RUNS[argv[0]].settings, argv[1:]))
    assert [i for i, _ in row["curve"]] == [0, 10, 20]  # readings 0, 10; the end, 20
    assert row["curve"][-1][1] == row["metrics"]["test_mse"]
    assert row["curve"] == _train_json(["train", *argv, "--quiet"], capsys)["curve"]
    config = {"model": "irnn"}
    stopped = [[0, 3.0], [10, 1.0]]  # a diverged seed's curve ends at its last reading
    rows = [
        {"config": config, "seed": 0, **row},
        {"config": config, "seed": 1, **row, "curve": stopped},
    ]
    (summary,) = summarize([config], rows)
    assert len(summary.curves) == 2
    first, tenth, last = (point for _i, point in row["curve"])
    assert median_curve(summary.curves) == [
        (0, (first + 3.0) / 2),
        (10, (tenth + 1.0) / 2),
        (20, last),
    ]
    figure([summary], tmp_path / "curve.png", title="t")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- on a real LocalCluster of two worker processes ----------------------------------------


@pytest.fixture
def cluster():
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, stopped after
    the test; yields (address, client)."""
    with xpnn_cluster.connect(None, 2) as client:  # the sweep's own local cluster
        yield client.scheduler.address, client


def _complete_lines(path: Path) -> list[str]:
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()  # not a line a kill cut short


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in _complete_lines(path)[1:]]


@DISTRIBUTED
def test_sweep_rows_equal_each_configuration_run_alone(cluster, tmp_path: Path, capsys) -> None:
    address, _client = cluster
    out = tmp_path / "s.jsonl"
    options = ["--bits", "4", "--batch-size", "4", "--iters", "200"]
    argv = ["sweep", "binary-addition", "--grid", "activation=sigmoid,tanh", "init=std,he"]
    rc = cli.main([*argv, *options, "--seeds", "2", "--scheduler", address, "--out", str(out)])
    assert rc == 0
    capsys.readouterr()
    rows = _rows(out)
    assert len(rows) == 8
    assert {r["worker"] for r in rows} <= set(_client.scheduler_info()["workers"])
    for row in rows:
        config = [f"--{k}={v}" for k, v in row["config"].items()]
        alone = _train_json(
            ["train", "binary-addition", *options, *config, "--seed", str(row["seed"])], capsys
        )
        assert row["final_loss"] == alone["losses"][-1][1]
        assert row["metrics"]["exact"] == alone["exact"]


def _wait_for(predicate, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@DISTRIBUTED
def test_a_killed_worker_loses_and_duplicates_no_row(cluster, tmp_path: Path, capsys) -> None:
    address, client = cluster
    out = tmp_path / "s.jsonl"
    grid = ["activation=sigmoid,tanh", "hidden-size=8,16,24"]
    argv = ["sweep", "binary-addition", "--grid", *grid, "--iters", "600", "--seeds", "2"]
    argv += ["--scheduler", address, "--out", str(out)]
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(cli.main(argv)))
    runner.start()
    try:
        busy = _wait_for(
            lambda: [(w, keys) for w, keys in client.processing().items() if keys],
            "a worker running a sweep task",
        )
        victim, keys = busy[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
    finally:
        runner.join(timeout=600)
    capsys.readouterr()
    assert codes == [0]
    rows = _rows(out)
    keys_seen = [row_key(r["config"], r["seed"]) for r in rows]
    assert len(rows) == 12
    assert len(set(keys_seen)) == 12
    spec = _sweep(
        "binary-addition",
        {"activation": ("sigmoid", "tanh"), "hidden-size": ("8", "16", "24")},
        ["--iters", "600"],
        2,
    )
    tasks = spec.tasks()
    for key in keys:  # the task that was running on the killed worker ran again elsewhere
        config, seed = tasks[int(str(key).rsplit("-", 1)[1])]
        (row,) = [r for r in rows if r["config"] == config and r["seed"] == seed]
        assert row["worker"] != victim


@DISTRIBUTED
def test_a_killed_sweep_restarted_finishes_only_the_rest(cluster, tmp_path: Path) -> None:
    address, _client = cluster
    out = tmp_path / "s.jsonl"
    argv = [sys.executable, "-m", "xpnn", "sweep", "binary-addition"]
    argv += ["--grid", "activation=sigmoid,tanh,relu", "--iters", "400", "--seeds", "4"]
    argv += ["--scheduler", address, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: out.exists() and len(_rows(out)) >= 3, "three rows")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    before = _complete_lines(out)
    done = len(_rows(out))
    assert done < 12, "the sweep finished before it could be killed"
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert f"ran {12 - done}, skipped {done} already in" in second.stderr
    after = out.read_text().splitlines()
    assert after[: len(before)] == before  # what the first sweep wrote stays as it was
    keys = [row_key(r["config"], r["seed"]) for r in _rows(out)]
    assert len(keys) == len(set(keys)) == 12
