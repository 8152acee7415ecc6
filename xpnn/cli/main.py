"""The ``xpnn`` command: ``xpnn backends``, ``xpnn agree``, ``xpnn train RUN`` (RUN one of
``xpnn.course.registry.RUNS``: backprop, regression, binary-addition, sine, sine-wave,
adding-problem) and ``xpnn sweep RUN``.

Each run's options are generated from its settings class; the command parses them into
the settings, checks them (``check()``) and runs the run. Every failure the user can
cause ends in one line on stderr and a non-zero exit status (``EXIT_RULE``), never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from xpnn._version import __version__
from xpnn.backends import BACKENDS, backend_info, float_errors_ignored
from xpnn.cli import agree, sweep
from xpnn.cli.options import add_options, from_namespace
from xpnn.course import notebooks, printouts
from xpnn.course.fields import flag_label
from xpnn.course.registry import RUNS, TRAINING_RUNS
from xpnn.course.settings import Sine, Training
from xpnn.errors import (
    BackendUnavailable,
    CheckpointError,
    OutputError,
    TrainingDiverged,
    XpnnError,
)
from xpnn.parallel.cluster import CONNECT_TIMEOUT, connect
from xpnn.parallel.gradients import running_workers
from xpnn.training.checkpoint import load
from xpnn.training.loop import divergence_advice
from xpnn.training.resume import Checkpointer

EXIT_RULE = (
    "exit status: 0 success; 2 a bad command line (an unknown option, a value out of "
    "range, a device the backend lacks); 1 a failure while running (a backend that is "
    "not installed, training that diverged, a checkpoint that cannot be used, too little "
    "memory); 130 interrupted"
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every option's default, unless its text already says it or the
    option is an on/off flag (off by default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or action.default is False:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, without the usage block, and whose
    help shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=_Formatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _writable_path(text: str) -> Path:
    """An argparse type: a figure's path, checked before anything runs: matplotlib is
    installed, the folder exists and is writable, and the suffix names a format."""
    path = Path(text)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        msg = 'needs matplotlib to draw the figure: pip install "xpnn[plot]"'
        raise argparse.ArgumentTypeError(msg) from None
    folder = path.parent
    if path.is_dir() or not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write a file at {text!r}: no such folder")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write a file at {text!r}: the folder is read-only"
        )
    suffix = path.suffix[1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        msg = f"cannot write a {suffix!r} figure at {text!r}; use one of: {', '.join(formats)}"
        raise argparse.ArgumentTypeError(msg)
    return path


def _count(text: str) -> int:
    """A command-line count: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _add_run_independent(p: argparse.ArgumentParser) -> None:
    """The options of every training run that are not its settings: where its output
    goes and where it runs."""
    where = p.add_argument_group(
        "data-parallel training on dask.distributed (each worker asked for its shard a step; "
        "the same numbers as one process)"
    )
    cluster = where.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=_count,
        default=None,
        metavar="N",
        help="train on a LocalCluster of N worker processes on 127.0.0.1, stopped at the end "
        "(default: one process, no cluster)",
    )
    cluster.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train on the workers of the dask scheduler at ADDRESS (tcp://HOST:8786); "
        f"gives up after {CONNECT_TIMEOUT} s (default: none)",
    )
    where.add_argument(
        "--threads-per-worker",
        type=_count,
        default=1,
        metavar="K",
        help="threads (and BLAS threads) of each local worker (default: 1)",
    )
    group = p.add_argument_group("options of every training run")
    group.add_argument(
        "--plot",
        type=_writable_path,
        default=None,
        metavar="FILE",
        help="write a PNG figure (needs the plot extra) (default: none)",
    )
    group.add_argument("--json", action="store_true", help="print a JSON summary only")
    group.add_argument(
        "--quiet", action="store_true", help="no progress lines; the final result still prints"
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``xpnn`` command."""
    parser = _Parser(
        prog="xpnn", description="The course's networks on any array backend.", epilog=EXIT_RULE
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser(
        "backends",
        help="which backends run here, or why not",
        description="List every backend xpnn knows: its version, default device, and "
        "whether it runs here (or why not, and what to install).",
    )
    agree.add_arguments(
        sub.add_parser(
            "agree",
            help="seeded runs on every backend vs numpy",
            description=agree.DESCRIPTION,
            epilog="exit status: 0 when every compared row is within its tolerance; 1 when "
            "a row fails or nothing could be compared; 2 for a bad command line",
        )
    )
    train = sub.add_parser(
        "train",
        help="run one of the course's notebooks",
        description="Run one of the course's notebooks. Each run's --help lists its options.",
    )
    runs = train.add_subparsers(dest="run", required=True, parser_class=_Parser)

    for name, run in RUNS.items():
        p = runs.add_parser(name, help=run.summary, description=run.description)
        add_options(p, run.settings)
        if run.trains:
            _add_run_independent(p)
        p.set_defaults(parser=p)
    sweep.add_arguments(
        sub.add_parser(
            "sweep",
            help="a grid of train runs x seeds on dask.distributed",
            description="Every configuration of --grid times seeds 0 .. N-1, each the run "
            "'xpnn train RUN' makes, one task each on dask.distributed; RUN's other options "
            "(such as --iters 3000) apply to every run. Rows go to --out as runs finish; a "
            "rerun finishes only what is missing.",
            epilog="exit status: 0 every run finished (a diverged run is a result); 1 a run "
            "failed (rerun to retry it); 2 bad input, found before any task is sent",
            allow_abbrev=False,
        ),
        runs=TRAINING_RUNS,
        plot_path=_writable_path,
    )
    return parser


def _backends() -> None:
    rows = [("backend", "version", "default device", "usable here")]
    for name in BACKENDS:
        info = backend_info(name)
        rows.append(
            (
                name,
                info.version or "-",
                info.default_device or "-",
                _usable(info),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))


def _usable(info: Any) -> str:
    if not info.usable:
        return f"no: {info.reason}"
    return "yes" if info.scheduler is None else f"yes (scheduler: {info.scheduler})"


def _summary(settings: Training, result: notebooks.RunResult) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    metrics = {k: v for k, v in result.metrics.items() if k not in ("generated", "test_pred")}
    _print_output(
        json.dumps(
            {
                "config": {"run": settings.RUN, **config},
                "losses": [[i, v] for i, v in result.train.history],
                **metrics,
                "seconds": round(result.seconds, 4),
                "train_seconds": round(result.train.stats.seconds, 4),
                "compiled": result.train.stats.compiled,
                "first_step_seconds": round(result.train.stats.compile_seconds, 4),
            }
        )
    )


def _print_output(text: str) -> None:
    """``text`` and a newline on stdout in one write, flushed; a stdout that cannot take
    it (a full disk behind ``> FILE``) is an ``OutputError``, not a traceback."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # main ends quietly: the reader stopped reading
        raise
    except OSError as exc:
        msg = f"cannot write the JSON summary to standard output: {exc.strerror or exc}"
        raise OutputError(msg) from None


def _resolve(args: argparse.Namespace) -> Any:
    """The run's settings from its options, resolved once (``settings.resolve``): a bad
    one is refused (exit 2) with the option named. A backend that cannot run here is not
    a command-line mistake: ``BackendUnavailable`` goes on to exit 1."""
    kind = RUNS[args.run].settings
    settings = from_namespace(kind, args)
    try:
        return settings.resolve(flag_label(kind))
    except BackendUnavailable:
        raise
    except XpnnError as exc:
        args.parser.error(str(exc))


def _check_parallel(args: argparse.Namespace, settings: Any) -> None:
    """Refuse (exit 2) what ``--workers``/``--scheduler`` cannot do with these settings."""
    if args.threads_per_worker != 1 and args.workers is None:
        args.parser.error("--threads-per-worker sets up local workers: it needs --workers N")
    if args.workers is None and args.scheduler is None:
        return
    flag = "--workers" if args.workers is not None else "--scheduler"
    if settings.backend == "dask":
        args.parser.error(
            f"{flag} trains data-parallel on a dask cluster; --backend dask is the dask.array "
            "backend: use one or the other"
        )
    batch = getattr(settings, "batch_size", None)
    if args.workers is not None and batch is not None and batch < args.workers:
        args.parser.error(
            f"--batch-size {batch} is smaller than --workers {args.workers}: every worker "
            "needs a row"
        )


def _cluster(args: argparse.Namespace, settings: Any, stack: contextlib.ExitStack) -> Any:
    """The ``distributed.Client`` of ``--workers``/``--scheduler`` (None without them),
    said on stderr; a cluster that cannot be had, or has more workers than the batch has
    rows, is refused (``_Refused``: exit 2, nothing ran)."""
    if args.workers is None and args.scheduler is None:
        return None
    try:
        client = stack.enter_context(connect(args.scheduler, args.workers, args.threads_per_worker))
        workers = running_workers(client)
    except XpnnError as exc:
        raise _Refused(str(exc)) from None
    if settings.batch_size < len(workers):
        msg = (
            f"--batch-size {settings.batch_size} is smaller than the cluster's {len(workers)} "
            "workers: every worker needs a row"
        )
        raise _Refused(msg)
    where = args.scheduler or f"a local cluster of {len(workers)} worker processes"
    print(
        f"xpnn: training data-parallel on {where} (dashboard {client.dashboard_link})",
        file=sys.stderr,
    )
    return client


class _Refused(Exception):
    """A command line that cannot run, found before anything ran (exit 2)."""


def _train(args: argparse.Namespace, plan: Any) -> int:
    from xpnn.cli import plotting

    run = RUNS[args.run]
    if not run.trains:
        run.run(plan)
        return 0
    settings = plan.settings
    if settings.backend == "dask":
        print(
            "xpnn: --backend dask runs every array operation as a dask task: a correctness "
            "backend, many times slower than numpy at these sizes; --workers N trains "
            "data-parallel on numpy instead",
            file=sys.stderr,
        )
    echo = None if args.json else print
    with contextlib.ExitStack() as stack:
        try:
            client = _cluster(args, settings, stack)
        except _Refused as exc:
            print(f"xpnn: error: {exc}", file=sys.stderr)
            return 2
        with float_errors_ignored():
            result = run.run(plan, echo=echo, progress=not args.quiet, parallel=client)
    if args.plot is not None:
        plotting.run_figure(settings, result, args.plot, run=args.run)
        if echo is not None:
            echo(f"wrote {args.plot}")
    if isinstance(settings, Sine) and echo is not None:
        hint = printouts.sine_hint(result.metrics)
        if hint is not None:
            echo(hint)
    if args.json:
        _summary(settings, result)
    return 0


def _checkpoint_step(settings: Any) -> tuple[Path, int | None] | None:
    """The run's checkpoint file and the iteration it holds (None where it cannot be
    read), or None when the run keeps none or has not saved one yet."""
    folder = getattr(settings, "checkpoint", None)
    path = None if folder is None else Path(folder) / Checkpointer.FILENAME
    if path is None or not path.is_file():
        return None
    try:
        return path, load(path).step
    except CheckpointError:
        return path, None


def _diverged(settings: Training, exc: TrainingDiverged) -> str:
    """One message: what happened, what the checkpoint holds, what to try."""
    text = f"training diverged: {exc.cause}. "
    saved = _checkpoint_step(settings)
    if saved is not None:
        step = "" if saved[1] is None else f" (iteration {saved[1]})"
        text += f"The checkpoint {saved[0]} holds the last finite state{step}. "
    else:
        text += "The parameters were restored to the last finite reading. "
    hints = {
        "lr": settings.lr,
        "momentum": settings.momentum,
        "init": getattr(settings, "init", None),
        "weight_init_std": getattr(settings, "weight_init_std", None),
    }
    if hasattr(settings, "clip"):
        hints["clip"] = settings.clip
    text += divergence_advice(hints, flag_label(type(settings)))
    if saved is not None:
        text += ", starting afresh (a resumed run keeps its settings)"
    return text + "."


def _interrupted(settings: Any, argv: Sequence[str]) -> str:
    """What Ctrl-C leaves: where the last checkpoint is, and the command that resumes it."""
    saved = _checkpoint_step(settings)
    if saved is None:
        return "interrupted"
    command = ["xpnn", *argv]
    if "--resume" not in command:
        command.append("--resume")
    step = "" if saved[1] is None else f" holds iteration {saved[1]}"
    return f"interrupted; {saved[0]}{step}; resume with: {shlex.join(command)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    parser = build_parser()
    argv_list = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv_list)
    if extra and args.command != "sweep":  # a sweep hands RUN's own options to its runs
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    settings = plan = None
    try:
        if args.command == "train":
            plan = _resolve(args)
            settings = plan.settings if RUNS[args.run].trains else plan
            if RUNS[args.run].trains:
                _check_parallel(args, settings)
        if args.command == "backends":
            _backends()
        elif args.command == "agree":
            return agree.run_agree(args)
        elif args.command == "sweep":
            return sweep.run_sweep(args, extra)
        else:
            return _train(args, plan)
    except TrainingDiverged as exc:
        print(f"xpnn: {_diverged(settings, exc)}", file=sys.stderr)
        return 1
    except XpnnError as exc:
        print(f"xpnn: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # e.g. a --batch-size too large for this machine
        print(f"xpnn: error: out of memory ({exc}); try smaller sizes", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"xpnn: {_interrupted(settings, argv_list)}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
