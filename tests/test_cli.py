"""The ``xpnn`` command as a user runs it: every bad invocation ends with a non-zero exit
status and one short message on stderr, never a traceback; a few good ones succeed."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from selection import selected_backends

from xpnn import cli
from xpnn.backends import backend_info
from xpnn.datasets import MAX_ALL_PAIRS_BITS as TOP_BITS
from xpnn.course.registry import RUNS

CLI = [sys.executable, "-m", "xpnn.cli"]
TIMEOUT = 120
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
pytestmark = pytest.mark.skipif(
    "numpy" not in selected_backends(),
    reason="the command runs on numpy by default; XPNN_BACKENDS leaves numpy out",
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _run_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cli.main(args)`` in this process, in ``cwd``, its output captured: what ``_run``
    returns, without starting an interpreter (the entry point itself is tested apart)."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(args)
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def _make_workdir(path: Path) -> Path:
    """A folder holding ``a_file``, an empty folder ``a_dir`` and an empty ``ckpt`` folder."""
    (path / "a_file").write_text("not a folder\n")
    (path / "a_dir").mkdir()
    (path / "ckpt").mkdir()
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return _make_workdir(tmp_path)


def _assert_one_line_failure(result: subprocess.CompletedProcess, match: str, status: int):
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == status, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xpnn"), lines[0]
    assert len(lines[0]) < 400, lines[0]
    assert re.search(match, lines[0]), lines[0]


# (arguments, exit status, a piece of the message)
BAD_COMMAND_LINES = [
    ([], 2, "the following arguments are required: command"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["--frob", "backends"], 2, "unrecognized arguments: --frob"),
    (["backends", "--all"], 2, "unrecognized arguments: --all"),
    (["train"], 2, "the following arguments are required: run"),
    (["train", "nosuch"], 2, "invalid choice: 'nosuch'"),
    (["train", "regression", "--nosuch"], 2, "unrecognized arguments: --nosuch"),
    (["train", "backprop", "--iters", "5"], 2, "unrecognized arguments: --iters 5"),
    (["train", "backprop", "--seed", "7"], 2, "unrecognized arguments: --seed 7"),
    (["agree", "--backends", "numpy,nosuch"], 2, "argument --backends: unknown backend nosuch"),
    (["agree", "--runs", "nosuch"], 2, "argument --runs: unknown run nosuch"),
    (["agree", "--jobs", "0"], 2, "argument --jobs: must be a whole number from 1 to 64"),
    (
        ["agree", "--compiled", "numpy"],
        2,
        "argument --compiled: unknown compiling backend numpy",
    ),
    (["train", "regression", "--iters", "0"], 2, "argument --iters: must be at least 1, got 0"),
    (["train", "regression", "--iters", "-3"], 2, "argument --iters: must be at least 1, got -3"),
    (["train", "regression", "--iters", "abc"], 2, "argument --iters: expected an integer"),
    (["train", "regression", "--iters", "1e3"], 2, "argument --iters: expected an integer"),
    (["train", "regression", "--iters"], 2, "argument --iters: expected one argument"),
    (["train", "regression", "--lr", "0"], 2, "argument --lr: must be positive and finite"),
    (["train", "regression", "--lr", "-0.1"], 2, "argument --lr: must be positive and finite"),
    (["train", "regression", "--lr", "nan"], 2, "argument --lr: must be positive and finite"),
    (["train", "regression", "--lr", "inf"], 2, "argument --lr: must be positive and finite"),
    (["train", "regression", "--lr", "fast"], 2, "argument --lr: expected a number, got 'fast'"),
    (["train", "regression", "--batch-size", "0"], 2, "argument --batch-size: must be at least 1"),
    (["train", "regression", "--log-every", "0"], 2, "argument --log-every: must be at least 1"),
    (["train", "regression", "--hidden-size", "0"], 2, "argument --hidden-size: must be at least"),
    (["train", "regression", "--hidden-size", "2.5"], 2, "--hidden-size: expected an integer"),
    (["train", "regression", "--seed", "-1"], 2, "argument --seed: must be a non-negative integer"),
    (["train", "regression", "--seed", "abc"], 2, "argument --seed: expected an integer"),
    (["train", "regression", "--low", "1", "--high", "0"], 2, "need finite low < high"),
    (["train", "regression", "--low", "nan"], 2, "argument --low: must be finite, got nan"),
    (["train", "regression", "--high", "inf"], 2, "argument --high: must be finite, got inf"),
    (["train", "regression", "--activation", "softplus"], 2, "invalid choice: 'softplus'"),
    (["train", "regression", "--dtype", "int32"], 2, "argument --dtype: invalid choice: 'int32'"),
    (["train", "backprop", "--dtype", "float16"], 2, "argument --dtype: invalid choice"),
    (["train", "regression", "--backend", "foo"], 2, "argument --backend: invalid choice: 'foo'"),
    (["train", "backprop", "--device", "nosuch"], 2, "backend numpy has no device 'nosuch'"),
    (["train", "regression", "--device", "cuda:7", "--iters", "2"], 2, "has no device 'cuda:7'"),
    (
        ["train", "backprop", "--backend", "array_api_strict", "--device", "no_float64"],
        2,
        "does not support float64",
    ),
    (["train", "regression", "--plot", "missing/loss.png"], 2, "cannot write a file at 'missing"),
    (["train", "regression", "--plot", "a_dir"], 2, "argument --plot: cannot write a file at"),
    (["train", "regression", "--plot", "loss.xyz"], 2, "cannot write a 'xyz' figure"),
    (
        ["train", "binary-addition", "--bits", "1"],
        2,
        r"bits must be an integer from 2 to \d+, got 1 ",
    ),
    (
        ["train", "binary-addition", "--bits", "99"],
        2,
        r"bits must be an integer from 2 to \d+, got 99 ",
    ),
    (
        ["train", "binary-addition", "--bits", str(TOP_BITS + 1)],
        2,
        f"bits must be an integer from 2 to {TOP_BITS}, got {TOP_BITS + 1} ",
    ),
    (["train", "binary-addition", "--bits", "eight"], 2, "argument --bits: expected an integer"),
    (["train", "binary-addition", "--truncate", "0"], 2, "argument --truncate: must be at least 1"),
    (["train", "binary-addition", "--truncate", "-2"], 2, "argument --truncate: must be at least"),
    (["train", "binary-addition", "--clip", "-1"], 2, "argument --clip: must be positive and"),
    (["train", "binary-addition", "--clip", "0"], 2, "argument --clip: must be positive and"),
    (["train", "binary-addition", "--clip", "nan"], 2, "argument --clip: must be positive and"),
    (["train", "binary-addition", "--weight-init-std", "0"], 2, "--weight-init-std: must be pos"),
    (["train", "binary-addition", "--weight-init-std", "inf"], 2, "--weight-init-std: must be"),
    (["train", "binary-addition", "--init", "zeros"], 2, "argument --init: invalid choice"),
    (["train", "sine", "--maxlen", "0"], 2, "argument --maxlen: must be at least 1, got 0"),
    (["train", "sine", "--maxlen", "450"], 2, "maxlen must be below n_points - n_test = 400"),
    (["train", "sine", "--hidden-size", "-1"], 2, "argument --hidden-size: must be at least 1"),
    (["train", "sine", "--lr", "1e999"], 2, "argument --lr: must be positive and finite"),
    (["train", "regression", "--batch-size", str(10**16)], 1, "use a smaller batch_size"),
    (["train", "binary-addition", "--batch-size", str(10**21)], 1, "use a smaller batch_size"),
]
# the checkpoint flags
BAD_COMMAND_LINES += [
    (["train", "regression", "--checkpoint", "missing"], 2, "checkpoint folder 'missing' does no"),
    (["train", "regression", "--checkpoint", "a_file"], 2, "checkpoint folder 'a_file' is not a"),
    (
        ["train", "regression", "--checkpoint", "ckpt", "--checkpoint-every", "0"],
        2,
        "argument --checkpoint-every: must be at least 1, got 0",
    ),
    (
        ["train", "regression", "--checkpoint", "ckpt", "--checkpoint-every", "x"],
        2,
        "argument --checkpoint-every: expected an integer",
    ),
    (["train", "regression", "--checkpoint-every", "5"], 2, "need --checkpoint DIR"),
    (["train", "regression", "--resume"], 2, "need --checkpoint DIR.*xpnn train regression --help"),
    (["train", "binary-addition", "--checkpoint", "ckpt", "--resume"], 1, "nothing to resume"),
]
# the optimiser and compile flags
BAD_COMMAND_LINES += [
    (["train", "sine", "--optimizer", "adamw"], 2, "argument --optimizer: invalid choice"),
    (
        ["train", "regression", "--optimizer", "adam", "--momentum", "0.9"],
        2,
        "optimizer adam does not take momentum; it takes lr, beta1, beta2, eps",
    ),
    (
        ["train", "regression", "--decay", "0.9"],
        2,
        "optimizer sgd does not take decay; it takes lr",
    ),
    (
        ["train", "sine", "--optimizer", "rmsprop", "--beta2", "0.9"],
        2,
        "optimizer rmsprop does not take beta2",
    ),
    (["train", "regression", "--optimizer", "adam", "--beta1", "1"], 2, "--beta1: must be in"),
    (["train", "regression", "--optimizer", "adam", "--eps", "0"], 2, "--eps: must be positive"),
    (["train", "regression", "--optimizer", "rmsprop", "--decay", "-0.1"], 2, "--decay: must"),
    (["train", "regression", "--compile", "yes"], 2, "argument --compile: invalid choice"),
    (
        ["train", "binary-addition", "--compile", "on"],
        2,
        r"compile 'on' needs a backend that compiles \(jax, torch\); numpy runs the step",
    ),
]
IDS = [" ".join(args) or "(no arguments)" for args, _, _ in BAD_COMMAND_LINES]


def _runnable(args: list[str]) -> bool:
    """Whether the invocation means the same here: a figure's format is checked only
    where matplotlib is installed (without it the plot step says what to install)."""
    return HAS_MATPLOTLIB or "loss.xyz" not in args


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every bad command line, run in this process one after the other, in one folder
    that none of them may change."""
    workdir = _make_workdir(tmp_path_factory.mktemp("cli"))
    runs = [tuple(args) for args, _, _ in BAD_COMMAND_LINES if _runnable(args)]
    runs += [
        ("train", "backprop", "--backend", backend, "--device", device)
        for backend, device in DEVICE_CASES
        if backend_info(backend).usable
    ]
    results = {args: _run_in_process(list(args), workdir) for args in runs}
    assert sorted(p.name for p in workdir.iterdir()) == ["a_dir", "a_file", "ckpt"]
    assert not any((workdir / "ckpt").iterdir())
    return results


@pytest.mark.parametrize(("args", "status", "match"), BAD_COMMAND_LINES, ids=IDS)
def test_bad_invocation(bad_results, args, status, match):
    if not _runnable(args):
        pytest.skip("matplotlib is not installed (the plot extra)")
    _assert_one_line_failure(bad_results[tuple(args)], match, status)


def test_unavailable_backend(workdir):
    info = backend_info("cupy")
    if info.usable:
        pytest.skip("cupy is usable here; this test needs a machine without it")
    result = _run(["train", "backprop", "--backend", "cupy"], workdir)
    _assert_one_line_failure(result, re.escape(info.reason), 1)


DEVICE_CASES = [("torch", "cuda:7"), ("torch", "meta"), ("jax", "gpu:3")]


@pytest.mark.parametrize(("backend", "device"), DEVICE_CASES)
def test_device_the_backend_lacks(bad_results, backend, device):
    if not backend_info(backend).usable:
        pytest.skip(f"{backend}: {backend_info(backend).reason}")
    result = bad_results["train", "backprop", "--backend", backend, "--device", device]
    match = "meta device holds" if device == "meta" else f"has no device '{device}'"
    _assert_one_line_failure(result, match, 2)


# -- good invocations -------------------------------------------------------------------


def test_backends_lists_every_backend(workdir):
    result = _run(["backends"], workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for name in ("numpy", "array_api_strict", "torch", "jax", "cupy"):
        assert name in result.stdout


def test_help(workdir):
    result = _run(["train", "binary-addition", "--help"], workdir)
    assert result.returncode == 0
    assert "--truncate" in result.stdout


def test_train_backprop(workdir):
    result = _run(["train", "backprop"], workdir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "##### 誤差逆伝播開始 #####" in result.stdout


def test_train_binary_addition_json(workdir):
    args = ["train", "binary-addition", "--iters", "50", "--quiet", "--json", "--bits", "4"]
    result = _run(args, workdir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["config"]["iters"] == 50
    assert summary["losses"][0][0] == 0
    assert summary["losses"][-1][0] == 49
    assert all(isinstance(v, float) for _, v in summary["losses"])
    assert summary["total"] == 64
    assert 0 <= summary["exact"] <= summary["total"]


def test_train_with_adam_says_how_the_step_ran(workdir):
    args = ["train", "regression", "--iters", "30", "--optimizer", "adam", "--lr", "0.01"]
    result = _run([*args, "--eps", "1e-8", "--compile", "off", "--json"], workdir)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["config"]["optimizer"] == "adam" and summary["config"]["eps"] == 1e-8
    assert summary["compiled"] is False and summary["first_step_seconds"] > 0
    result = _run([*args, "--log-every", "10"], workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("iters:0 loss:")
    assert lines[1].startswith("step: eager (not compiled); first call ")
    assert sum(line.startswith("step: eager") for line in lines) == 1
    assert "compiling" not in result.stderr
    result = _run([*args, "--log-every", "1", "--quiet"], workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("step: eager") for line in lines) == 1  # in the result


@pytest.mark.skipif(
    not backend_info("jax").usable or "jax" not in selected_backends(), reason="needs jax"
)
def test_a_compiled_run_says_on_stderr_when_its_compile_starts_and_ends(workdir):
    args = ["train", "regression", "--iters", "3", "--backend", "jax", "--compile", "on"]
    result = _run(args, workdir)
    assert result.returncode == 0, result.stderr
    said = result.stderr.splitlines()
    assert said[0] == "compiling the step for jax (jax.jit); this takes a while the first time"
    assert re.fullmatch(r"compiled: the first call took \d+\.\d s", said[1])
    assert len(said) == 2


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (the plot extra)")
def test_train_regression_writes_a_plot(workdir):
    plot = workdir / "loss.png"
    args = ["train", "regression", "--iters", "20", "--log-every", "5", "--plot", str(plot)]
    result = _run(args, workdir)
    assert result.returncode == 0, result.stderr
    assert "iters:0 loss:" in result.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


# -- conventions ------------------------------------------------------------------------


def test_version_comes_from_the_package(workdir):
    import xpnn

    for command in (["--version"], ["-m", "xpnn", "--version"]):
        args = command if command[0] == "-m" else ["-m", "xpnn.cli", *command]
        result = subprocess.run(
            [sys.executable, *args], cwd=workdir, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"xpnn {xpnn.__version__}"


def test_python_dash_m_xpnn_is_the_command(workdir):
    result = subprocess.run(
        [sys.executable, "-m", "xpnn", "train", "backprop"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "##### 誤差逆伝播開始 #####" in result.stdout


def _subparsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _subparsers(sub)


def test_every_help_has_a_description_and_shows_the_defaults():
    for parser in _subparsers(cli.build_parser()):
        assert parser.description, parser.prog
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.default in (False, argparse.SUPPRESS):
                continue  # positionals, on/off flags, --help and --version
            help_text = cli._Formatter(parser.prog)._get_help_string(action)
            assert "default:" in help_text or "%(default)" in help_text, (parser.prog, action)
        assert "--help" in text


def test_the_exit_status_rule_is_in_the_help():
    text = cli.build_parser().format_help()
    assert "2 a bad command line" in " ".join(text.split())
    assert "1 a failure while running" in " ".join(text.split())


def test_quiet_hides_the_progress_but_not_the_result(workdir):
    result = _run(["train", "regression", "--iters", "20", "--quiet"], workdir)
    assert result.returncode == 0, result.stderr
    assert "iters:" not in result.stdout
    assert "test MSE on 1000 fresh samples" in result.stdout


def test_agree_that_compares_nothing_fails_with_the_install_hint(capsys):
    code = cli.main(["agree", "--backends", "numpy"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing was compared" in err and "only the reference" in err
    if backend_info("cupy").usable:
        pytest.skip("cupy is usable here; the second case needs a machine without it")
    code = cli.main(["agree", "--backends", "numpy,cupy"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "nothing was compared: none of cupy can run here" in err
    assert "pip install" in err and len(err.strip().splitlines()) == 1
    assert "skipped cupy" in out


def test_agree_says_what_it_compared(capsys):
    if not backend_info("array_api_strict").usable:
        pytest.skip(f"array_api_strict: {backend_info('array_api_strict').reason}")
    code = cli.main(["agree", "--backends", "array_api_strict", "--runs", "mlp-softmax"])
    out = capsys.readouterr().out
    assert code == 0
    assert "compared array_api_strict on CPU_DEVICE with numpy: 1 runs x 2 dtypes, 2 rows" in out


def test_agree_with_jobs_gives_the_rows_of_one_process(capsys):
    """Runs spread over worker processes give every row the same numbers."""
    if not backend_info("array_api_strict").usable:
        pytest.skip(f"array_api_strict: {backend_info('array_api_strict').reason}")
    argv = ["agree", "--backends", "array_api_strict", "--runs", "mlp-softmax,rnn-addition"]
    tables = []
    for jobs in ("1", "2"):
        assert cli.main([*argv, "--json", "--jobs", jobs]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        tables.append([{k: v for k, v in row.items() if k != "seconds"} for row in rows])
    assert len(tables[0]) == 6  # 2 reference rows, 2 runs x 2 dtypes
    assert tables[1] == tables[0]


def test_agree_compares_the_compiled_step_with_numpy_and_with_its_eager_step(capsys):
    if not backend_info("jax").usable:
        pytest.skip(f"jax: {backend_info('jax').reason}")
    code = cli.main(["agree", "--backends", "jax", "--runs", "mlp-softmax", "--compiled", "jax"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith("jax")]
    assert [(r[0], r[3:6]) for r in rows if r[4] == "vs"] == [
        ("jax+jax.jit", ["float64", "vs", "float64"]),
        ("jax+jax.jit", ["float32", "vs", "float32"]),
    ]
    assert all(r[-1] == "PASS" for r in rows) and len(rows) == 6
    assert "(compiled steps also with their eager step)" in out


# -- help generated from the settings -----------------------------------------------------


def _run_parser(run: str) -> argparse.ArgumentParser:
    return next(p for p in _subparsers(cli.build_parser()) if p.prog == f"xpnn train {run}")


@pytest.mark.parametrize("run", list(RUNS))
def test_help_and_defaults_are_the_settings_own(run, capsys):
    """Every option's default, parsed and as ``--help`` shows it, is the settings
    class's; no help names another run's default."""
    with pytest.raises(SystemExit) as done:
        cli.main(["train", run, "--help"])
    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    defaults = RUNS[run].settings()
    parser = _run_parser(run)
    parsed = vars(parser.parse_args([]))
    formatter = cli._Formatter(parser.prog)
    names = {f.name for f in fields(defaults)}
    options = [a for a in parser._actions if a.dest in names]
    assert {a.dest for a in options} >= {"backend", "device", "dtype"}
    for action in options:
        value = getattr(defaults, action.dest)
        assert parsed[action.dest] == value, action.dest
        text = " ".join(formatter._expand_help(action).split())
        assert text in shown, action.dest
        if value is None:
            assert "(default: " in text and "(default: None)" not in text, text
        elif value is not False:
            assert f"(default: {value})" in text, text
    if getattr(defaults, "optimizer", None) is not None:  # adding-problem: adam
        assert "(default: sgd" not in shown and "plain SGD" not in shown


# -- layout -------------------------------------------------------------------------------

XPNN = Path(cli.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each module under xpnn/ (``xpnn.cli.sweep``) and the xpnn modules it imports, at its
    top or inside a function."""
    paths = {}
    for path in XPNN.rglob("*.py"):
        parts = path.relative_to(XPNN.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def test_no_library_module_imports_the_cli():
    """Only the command's entry points (``__main__``) import ``xpnn.cli``."""
    importers = sorted(m for m, found in _imports().items() if "xpnn.cli" in found)
    assert importers == ["xpnn.__main__", "xpnn.cli.agree.__main__"]


def test_the_import_graph_has_no_cycle():
    graph = _imports()
    for start in graph:
        reached, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo.extend(graph[module])
        assert start not in reached, f"{start} imports itself through {sorted(reached)}"
