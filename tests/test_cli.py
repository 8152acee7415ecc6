"""The ``xpnn`` command as a user runs it: every bad invocation ends with a non-zero exit
status and one short message on stderr, never a traceback, and nothing is run or written
before its checks; a few good ones succeed and say what they should where they should.

Each command runs in this process (``cli.main``) but where a process of its own is the
point: a signal, the entry point."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import fields
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from selection import selected_backends
from xpnn.checkpoint import load

from xpnn import cli
from xpnn.backends import backend_info
from xpnn.course.registry import RUNS
from xpnn.datasets import MAX_ALL_PAIRS_BITS as TOP_BITS

cli_main = importlib.import_module("xpnn.cli.main")  # the module (cli.main is the function)
CLI = [sys.executable, "-m", "xpnn"]
TIMEOUT = 120
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _run_in_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cli.main(args)`` in this process, in ``cwd``: its exit status and output, as a
    process of its own would give them, without starting an interpreter."""
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
    (["train", "regression", "--iters", "0"], 2, "--iters must be an integer of at least 1, got 0"),
    (
        ["train", "regression", "--iters", "-3"],
        2,
        "--iters must be an integer of at least 1, got -3",
    ),
    (["train", "regression", "--iters", "abc"], 2, "argument --iters: expected an integer"),
    (["train", "regression", "--iters", "1e3"], 2, "argument --iters: expected an integer"),
    (["train", "regression", "--iters"], 2, "argument --iters: expected one argument"),
    (["train", "regression", "--lr", "0"], 2, "--lr must be a positive finite number"),
    (["train", "regression", "--lr", "-0.1"], 2, "--lr must be a positive finite number"),
    (["train", "regression", "--lr", "nan"], 2, "--lr must be a positive finite number"),
    (["train", "regression", "--lr", "inf"], 2, "--lr must be a positive finite number"),
    (["train", "regression", "--lr", "fast"], 2, "argument --lr: expected a number, got 'fast'"),
    (
        ["train", "regression", "--batch-size", "0"],
        2,
        "--batch-size must be an integer of at least 1",
    ),
    (
        ["train", "regression", "--log-every", "0"],
        2,
        "--log-every must be an integer of at least 1",
    ),
    (
        ["train", "regression", "--hidden-size", "0"],
        2,
        "--hidden-size must be an integer of at least",
    ),
    (["train", "regression", "--hidden-size", "2.5"], 2, "--hidden-size: expected an integer"),
    (["train", "regression", "--seed", "-1"], 2, "--seed must be an integer of at least 0, got -1"),
    (["train", "regression", "--seed", "abc"], 2, "argument --seed: expected an integer"),
    (["train", "regression", "--low", "1", "--high", "0"], 2, "need finite low < high"),
    (["train", "regression", "--low", "nan"], 2, "--low must be a finite number, got nan"),
    (["train", "regression", "--high", "inf"], 2, "--high must be a finite number, got inf"),
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
    (
        ["train", "binary-addition", "--truncate", "0"],
        2,
        "--truncate must be an integer of at least 1",
    ),
    (
        ["train", "binary-addition", "--truncate", "-2"],
        2,
        "--truncate must be an integer of at least",
    ),
    (["train", "binary-addition", "--clip", "-1"], 2, "--clip must be a positive finite"),
    (["train", "binary-addition", "--clip", "0"], 2, "--clip must be a positive finite"),
    (["train", "binary-addition", "--clip", "nan"], 2, "--clip must be a positive finite"),
    (["train", "binary-addition", "--weight-init-std", "0"], 2, "--weight-init-std must be a pos"),
    (["train", "binary-addition", "--weight-init-std", "inf"], 2, "--weight-init-std must be"),
    (["train", "binary-addition", "--init", "zeros"], 2, "argument --init: invalid choice"),
    (["train", "sine", "--maxlen", "0"], 2, "--maxlen must be an integer of at least 1, got 0"),
    (["train", "sine", "--maxlen", "450"], 2, "maxlen must be below n_points - n_test = 400"),
    (["train", "sine", "--hidden-size", "-1"], 2, "--hidden-size must be an integer of at least 1"),
    (["train", "sine", "--lr", "1e999"], 2, "--lr must be a positive finite number"),
    (
        ["train", "regression", "--batch-size", str(10**16)],
        2,
        "--batch-size must be an integer from 1 to",
    ),
    (["train", "binary-addition", "--batch-size", str(2**31 - 1)], 1, "use a smaller batch_size"),
]
# the checkpoint flags
BAD_COMMAND_LINES += [
    (
        ["train", "regression", "--checkpoint", "a_file"],
        2,
        "checkpoint folder 'a_file': 'a_file' is not a folder",
    ),
    (
        ["train", "regression", "--checkpoint", "ckpt", "--checkpoint-every", "0"],
        2,
        "--checkpoint-every N must be an integer of at least 1, got 0",
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
    (["train", "regression", "--optimizer", "adam", "--beta1", "1"], 2, "--beta1 must be in"),
    (["train", "regression", "--optimizer", "adam", "--eps", "0"], 2, "--eps must be a positive"),
    (["train", "regression", "--optimizer", "rmsprop", "--decay", "-0.1"], 2, "--decay must"),
    (["train", "regression", "--compile", "yes"], 2, "argument --compile: invalid choice"),
    (
        ["train", "binary-addition", "--compile", "on"],
        2,
        r"compile 'on' needs a backend that compiles \(jax, torch\); numpy runs the step",
    ),
]
IDS = [" ".join(args) or "(no arguments)" for args, _, _ in BAD_COMMAND_LINES]


def _runnable(args: list[str]) -> bool:
    """Whether the invocation means the same here: without matplotlib every --plot is
    refused for that (test_a_plot_that_cannot_be_drawn_is_refused_before_training)."""
    return HAS_MATPLOTLIB or "--plot" not in args


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
    result = bad_results[tuple(args)]
    _assert_one_line_failure(result, match, status)
    assert result.stdout == ""  # refused before anything ran


def test_unavailable_backend(workdir):
    info = backend_info("cupy")
    if info.usable:
        pytest.skip("cupy is usable here; this test needs a machine without it")
    result = _run_in_process(["train", "backprop", "--backend", "cupy"], workdir)
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


def test_backends_lists_every_backend(capsys):
    assert cli.main(["backends"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for name in ("numpy", "array_api_strict", "torch", "jax", "cupy"):
        assert name in out


def test_train_backprop(capsys):
    assert cli.main(["train", "backprop"]) == 0
    assert "##### 誤差逆伝播開始 #####" in capsys.readouterr().out


def test_train_binary_addition_json(capsys):
    args = ["train", "binary-addition", "--iters", "50", "--quiet", "--json", "--bits", "4"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["iters"] == 50
    assert summary["losses"][0][0] == 0
    assert summary["losses"][-1][0] == 49
    assert all(isinstance(v, float) for _, v in summary["losses"])
    assert summary["total"] == 64
    assert 0 <= summary["exact"] <= summary["total"]
    assert summary["compiled"] is False and summary["first_step_seconds"] > 0


@pytest.mark.jax_covering
@pytest.mark.parametrize("backend", ["numpy", "jax"], indirect=True)
def test_quiet_prints_the_result_and_a_compile_says_so_once_on_stderr(backend, capsys):
    """Progress lines on stdout, then the result and the wall time; ``--quiet`` leaves the
    result and the wall time only. A step that compiles says so in one line on stderr,
    after its compile; an eager one says nothing."""
    if backend not in selected_backends():
        pytest.skip(f"runs in the {backend} session (XPNN_BACKENDS={backend})")
    compile = ["--compile", "on"] if backend == "jax" else []
    args = ["train", "regression", "--iters", "30", "--log-every", "10", "--backend", backend]
    said = []
    for quiet in (False, True):
        assert cli.main([*args, *compile, *(["--quiet"] if quiet else [])]) == 0
        out, err = capsys.readouterr()
        heads = [line.split(":")[0] for line in out.splitlines()]
        result = ["test MSE on 1000 fresh samples", "wall time"]
        assert heads == ([] if quiet else ["iters"] * 4) + result, out
        said.append(err.splitlines())
    for lines in said:
        if backend == "jax":
            (line,) = lines
            assert re.fullmatch(
                r"xpnn: the step compiled with jax\.jit: its first call took "
                r"\d+\.\d s",
                line,
            ), line
        else:
            assert lines == []


AS_FROM_A_TERMINAL = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job ignores SIGINT
sys.argv = ["xpnn", *sys.argv[1:]]
runpy.run_module("xpnn", run_name="__main__")
"""
"""``python -m xpnn ARGS`` with SIGINT handled as in a terminal, wherever the test runs."""


def test_ctrl_c_names_the_checkpoint_and_the_command_that_resumes_it(tmp_path):
    """SIGINT to ``xpnn train`` (what Ctrl-C sends): exit status 130, and stderr names
    the checkpoint file, the iteration it holds and the command that resumes it."""
    folder = tmp_path / "run"
    args = ["train", "binary-addition", "--checkpoint", str(folder)]
    args += ["--checkpoint-every", "50", "--iters", "100000"]
    path = folder / "checkpoint.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_TERMINAL, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    (line,) = err.splitlines()
    step = load(path).step
    assert line.startswith(f"xpnn: interrupted; {path} holds iteration {step}; "), line
    assert 0 < step < 100000
    command = line.split("resume with: ", 1)[1]
    assert shlex.split(command) == ["xpnn", *args, "--resume"]


def test_python_dash_m_xpnn_and_the_xpnn_script_are_the_command():
    import xpnn

    result = subprocess.run(
        [*CLI, "--version"], capture_output=True, text=True, check=False, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"xpnn {xpnn.__version__}"
    (script,) = entry_points(group="console_scripts", name="xpnn")
    assert script.load() is cli.main


# -- checks before any work ---------------------------------------------------------------


def _no_matplotlib(monkeypatch, folder: Path) -> Path:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    return folder / "loss.png"


def _read_only(monkeypatch, folder: Path) -> Path:
    """A folder this process cannot write into (root can write into a chmod 500 one:
    there the operating system's answer is simulated)."""
    folder = folder / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: access(p, mode, **kw) and Path(p) != folder
    )
    return folder / "loss.png"


PLOTS_REFUSED = {
    "a missing folder": (lambda mp, folder: folder / "missing" / "loss.png", "no such folder"),
    "a read-only folder": (_read_only, "the folder is read-only"),
    "no matplotlib": (_no_matplotlib, 'pip install "xpnn[plot]"'),
}


@pytest.mark.parametrize(("where", "said"), PLOTS_REFUSED.values(), ids=list(PLOTS_REFUSED))
def test_a_plot_that_cannot_be_drawn_is_refused_before_training(
    where, said, tmp_path, capsys, monkeypatch
):
    plot = where(monkeypatch, tmp_path)
    try:
        with pytest.raises(SystemExit) as stop:
            cli.main(["train", "regression", "--iters", "30", "--plot", str(plot)])
    finally:
        plot.parent.chmod(0o700) if plot.parent.exists() else None
    out, err = capsys.readouterr()
    assert stop.value.code == 2
    assert out == ""  # no progress line: nothing ran
    (line,) = err.splitlines()
    assert "argument --plot" in line and said in line, line
    assert not plot.exists()


def test_a_missing_checkpoint_folder_is_made_unless_the_run_resumes(tmp_path, capsys):
    folder = tmp_path / "a" / "b" / "c"
    args = ["train", "binary-addition", "--iters", "20", "--bits", "3", "--quiet"]
    assert cli.main([*args, "--checkpoint", str(folder), "--resume"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("xpnn: error: nothing to resume")
    assert not (tmp_path / "a").exists()  # a refused run makes nothing
    assert cli.main([*args, "--checkpoint", str(folder)]) == 0
    assert load(folder / "checkpoint.npz").step == 20


@pytest.mark.jax_covering
@pytest.mark.parametrize("backend", ["jax"], indirect=True)
def test_a_resume_that_cannot_be_is_refused_before_the_step_compiles(tmp_path, backend, capsys):
    """Nothing to resume, or a checkpoint of an eager run resumed compiled (another
    rounding): exit 1 with one line, and no compile said or done before it."""
    if backend not in selected_backends():
        pytest.skip(f"runs in the {backend} session (XPNN_BACKENDS={backend})")
    args = ["train", "binary-addition", "--iters", "20", "--bits", "3", "--quiet"]
    args += ["--backend", backend, "--checkpoint", str(tmp_path)]
    assert cli.main([*args, "--compile", "on", "--resume"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("xpnn: error: nothing to resume"), line
    assert cli.main([*args, "--compile", "off"]) == 0
    capsys.readouterr()
    assert cli.main([*args, "--compile", "on", "--resume", "--iters", "40"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("xpnn: error: ") and "compiler=None" in line, line


# -- conventions ------------------------------------------------------------------------


def _subparsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _subparsers(sub)


def test_every_help_has_a_description_and_shows_the_defaults():
    for parser in _subparsers(cli_main.build_parser()):
        assert parser.description, parser.prog
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.default in (False, argparse.SUPPRESS):
                continue  # positionals, on/off flags, --help and --version
            help_text = cli_main._Formatter(parser.prog)._get_help_string(action)
            assert "default:" in help_text or "%(default)" in help_text, (parser.prog, action)
        assert "--help" in text


def test_the_exit_status_rule_is_in_the_help():
    text = " ".join(cli_main.build_parser().format_help().split())
    assert "2 a bad command line" in text and "1 a failure while running" in text
    assert "130 interrupted" in text


# -- xpnn agree: its options and one row (the agree nox session runs the table) -------------


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


# -- help generated from the settings -----------------------------------------------------


def _run_parser(run: str) -> argparse.ArgumentParser:
    return next(p for p in _subparsers(cli_main.build_parser()) if p.prog == f"xpnn train {run}")


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
    formatter = cli_main._Formatter(parser.prog)
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
