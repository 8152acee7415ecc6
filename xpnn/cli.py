"""The ``xpnn`` command: ``xpnn backends``, ``xpnn agree``, ``xpnn train {backprop,
regression,binary-addition,sine,adding-problem}``.

Every failure the user can cause ends in one line on stderr and a non-zero exit status
(``EXIT_RULE``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from xpnn import __version__, agree, datasets, sweep
from xpnn.backends import (
    AUTO_TORCH_STEPS,
    BACKENDS,
    COMPILE_MODES,
    backend_info,
    compiler_for,
    float_errors_ignored,
    get_namespace,
    resolve_device,
    resolve_dtype,
)
from xpnn.checkpoint import load
from xpnn.course import notebooks, printouts
from xpnn.course.settings import (
    AddingProblem,
    BinaryAddition,
    Regression,
    Sine,
    SineWave,
    Training,
)
from xpnn.errors import BackendUnavailable, CheckpointError, TrainingDiverged, XpnnError, shown
from xpnn.nn.cells import CELLS
from xpnn.optim import OPTIMIZERS, Adam, Momentum, RMSProp
from xpnn.training.resume import Checkpointer, check_folder
from xpnn.training.train import divergence_advice

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


def _parse(text: str, convert: type, what: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text)}") from None


def _parse_int(text: str) -> int:
    return _parse(text, int, "an integer")


def _positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _parse(text, float, "a number")
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
    return value


def _finite_float(text: str) -> float:
    value = _parse(text, float, "a number")
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text}")
    return value


def _rate(text: str) -> float:
    """A number in [0, 1): Adam's betas, RMSProp's decay."""
    value = _finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _checkpoint_folder(text: str) -> Path:
    try:
        return check_folder(text)
    except CheckpointError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed(text: str) -> int:
    value = _parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _writable_path(text: str) -> Path:
    path = Path(text)
    if path.is_dir() or not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write a file at {text!r}")
    suffix = path.suffix[1:].lower()
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # the plot step itself says what to install
        return path
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        msg = f"cannot write a {suffix!r} figure at {text!r}; use one of: {', '.join(formats)}"
        raise argparse.ArgumentTypeError(msg)
    return path


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="numpy", choices=BACKENDS, help="array backend")
    p.add_argument(
        "--device", default=None, help="device name, e.g. cpu, cuda:0 (default: the backend's)"
    )
    p.add_argument(
        "--dtype", default="float64", choices=("float32", "float64"), help="floating dtype"
    )


def _add_training(p: argparse.ArgumentParser, defaults: Training) -> None:
    """The options every training run shares, with the run's ``defaults``."""
    _add_backend(p)
    _setting(p, "--seed", defaults, type=_seed, help="seed of weights and data")
    _setting(p, "--iters", defaults, type=_positive_int, help="iterations")
    _setting(p, "--lr", defaults, type=_positive_float, help="learning rate")
    _setting(p, "--batch-size", defaults, type=_positive_int, help="batch size")
    _setting(
        p,
        "--log-every",
        defaults,
        type=_positive_int,
        help="iterations between progress lines (and loss readings)",
    )
    p.add_argument(
        "--plot",
        type=_writable_path,
        default=None,
        metavar="FILE",
        help="write a PNG figure (needs the plot extra) (default: none)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary only")
    p.add_argument(
        "--quiet", action="store_true", help="no progress lines; the final result still prints"
    )
    _setting(
        p,
        "--optimizer",
        defaults,
        choices=list(OPTIMIZERS),
        help="the optimiser, with --lr and its own options below (default: sgd, or "
        "momentum where --momentum is given)",
    )
    _setting(
        p,
        "--momentum",
        defaults,
        type=_fraction,
        help="momentum's momentum, in (0, 1) (default: plain SGD; with --optimizer "
        f"momentum: {Momentum().momentum})",
    )
    adam, rmsprop = Adam(), RMSProp()
    p.add_argument(
        "--beta1", type=_rate, default=None, help=f"adam's beta1 (default: {adam.beta1})"
    )
    p.add_argument(
        "--beta2", type=_rate, default=None, help=f"adam's beta2 (default: {adam.beta2})"
    )
    p.add_argument(
        "--eps",
        type=_positive_float,
        default=None,
        help=f"adagrad's, rmsprop's and adam's eps (default: {adam.eps:g})",
    )
    p.add_argument(
        "--decay", type=_rate, default=None, help=f"rmsprop's decay (default: {rmsprop.decay})"
    )
    _setting(
        p,
        "--compile",
        defaults,
        choices=COMPILE_MODES,
        help="compile the training step: auto compiles on jax "
        f"and on torch for runs of {AUTO_TORCH_STEPS}+ "
        "iterations; on needs jax or torch (default: auto)",
    )
    p.add_argument(
        "--checkpoint",
        type=_checkpoint_folder,
        default=None,
        metavar="DIR",
        help=f"keep DIR/{Checkpointer.FILENAME} current (DIR must exist) (default: none)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="iterations between checkpoints (default: --log-every)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --checkpoint DIR, with the same settings",
    )


def _add_cell(p: argparse.ArgumentParser, defaults: Training) -> None:
    _setting(p, "--cell", defaults, choices=CELLS, help="the recurrent cell")


def _setting(p: argparse.ArgumentParser, flag: str, defaults: Training, **kwargs: Any) -> None:
    """Add the option ``flag`` whose default is the ``defaults`` field of the same name
    (``--hidden-size``: ``hidden_size``)."""
    p.add_argument(flag, default=getattr(defaults, flag[2:].replace("-", "_")), **kwargs)


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

    p = runs.add_parser(
        "backprop",
        help="seed 001: one backpropagation step, printed",
        description="Seed 001: one forward pass, one backward pass and one SGD step of a "
        "fixed 2-3-2 network (no random numbers, so no --seed), printed with the "
        "notebook's labels.",
    )
    _add_backend(p)

    defaults = Regression()
    p = runs.add_parser(
        "regression",
        help="notebook 1_3: SGD on 3*x0 + 2*x1",
        description="Notebook 1_3: a 2-10-1 network fits 3*x0 + 2*x1 by per-sample SGD.",
    )
    _add_training(p, defaults)
    _setting(p, "--hidden-size", defaults, type=_positive_int, help="hidden units")
    _setting(
        p,
        "--activation",
        defaults,
        choices=("relu", "sigmoid", "tanh"),
        help="hidden activation",
    )
    _setting(p, "--low", defaults, type=_finite_float, help="inputs uniform in [low, high)")
    _setting(p, "--high", defaults, type=_finite_float, help="see --low")

    defaults = BinaryAddition()
    p = runs.add_parser(
        "binary-addition",
        help="notebook 3_1: an RNN learns binary addition",
        description="Notebook 3_1: a 2-16-1 RNN learns to add binary numbers, then adds "
        "every operand pair.",
    )
    _add_training(p, defaults)
    _setting(p, "--hidden-size", defaults, type=_positive_int, help="hidden units")
    _setting(
        p,
        "--activation",
        defaults,
        choices=("sigmoid", "tanh", "relu"),
        help="hidden activation",
    )
    _setting(p, "--init", defaults, choices=("std", "xavier", "he"), help="weight init")
    _setting(
        p,
        "--weight-init-std",
        defaults,
        type=_positive_float,
        help="standard deviation of the weights with --init std",
    )
    _setting(
        p,
        "--bits",
        defaults,
        type=_parse_int,
        help=f"bits per number (2 to {datasets.MAX_ALL_PAIRS_BITS})",
    )
    _setting(
        p,
        "--truncate",
        defaults,
        type=_positive_int,
        help="truncated BPTT block (default: full BPTT)",
    )
    _setting(
        p,
        "--clip",
        defaults,
        type=_positive_float,
        help="global gradient norm cap (default: none)",
    )
    _add_cell(p, defaults)

    for name, defaults, summary, text in (
        (
            "sine",
            Sine(),
            "notebook 3_3: a many-to-one RNN on a sine wave",
            "Notebook 3_3: a 1-5-1 many-to-one RNN predicts a sine wave one step ahead, "
            "then continues it from its own predictions. At the notebook's settings the "
            "continuation fades to a constant: see sine-wave.",
        ),
        (
            "sine-wave",
            SineWave(),
            "notebook 3_3, trained until its continuation is a sine",
            "Notebook 3_3's network with the course's suggested windows of 5, trained "
            "longer (batches of 10, lr 0.3, 10000 iterations): its continuation is a sine.",
        ),
    ):
        p = runs.add_parser(name, help=summary, description=text)
        _add_training(p, defaults)
        _setting(p, "--hidden-size", defaults, type=_positive_int, help="hidden units")
        _setting(p, "--maxlen", defaults, type=_positive_int, help="window length")
        _setting(
            p,
            "--weight-init-std",
            defaults,
            type=_positive_float,
            help="standard deviation of the initial weights",
        )
        _add_cell(p, defaults)

    defaults = AddingProblem()
    p = runs.add_parser(
        "adding-problem",
        help="day 3: LSTM, GRU or simple RNN on the adding problem",
        description="The adding problem (Hochreiter and Schmidhuber, 1997): sum the two "
        "marked values of a long sequence. Always predicting the mean scores a test MSE "
        "of about 0.167; only a network that remembers the marked values does better.",
    )
    _add_training(p, defaults)
    _add_cell(p, defaults)
    _setting(p, "--steps", defaults, type=_positive_int, help="sequence length (at least 2)")
    _setting(p, "--hidden-size", defaults, type=_positive_int, help="hidden units")
    _setting(
        p,
        "--clip",
        defaults,
        type=_positive_float,
        help="global gradient norm cap",
    )
    _setting(p, "--n-test", defaults, type=_positive_int, help="fresh test sequences")
    for p in runs.choices.values():
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
        runs=[name for name in runs.choices if name != "backprop"],
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


def _settings(args: argparse.Namespace, kind: type[Training]) -> Training:
    """The run's settings object, filled from the options of the same names."""
    return kind(**{f.name: getattr(args, f.name) for f in fields(kind) if hasattr(args, f.name)})


def _summary(settings: Training, result: notebooks.RunResult) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    metrics = {k: v for k, v in result.metrics.items() if k not in ("generated", "test_pred")}
    print(
        json.dumps(
            {
                "config": {"run": settings.RUN, **config},
                "losses": [[i, v] for i, v in result.train.history],
                **metrics,
                "seconds": round(result.seconds, 4),
                "train_seconds": round(result.train.seconds, 4),
                "compiled": result.train.compiled,
                "first_step_seconds": round(result.train.compile_seconds, 4),
            }
        )
    )


RUNS: dict[str, tuple[type[Training], Callable[..., notebooks.RunResult]]] = {
    "regression": (Regression, notebooks.regression),
    "binary-addition": (BinaryAddition, notebooks.binary_addition),
    "sine": (Sine, notebooks.sine),
    "adding-problem": (AddingProblem, notebooks.adding_problem),
    "sine-wave": (SineWave, notebooks.sine),
}


def _check(args: argparse.Namespace) -> None:
    """Refuse (exit 2) what the parser alone cannot see: option pairs, the device and
    dtype on the backend, the run's data settings. A backend that is not installed is
    not a command-line mistake: it ends in exit 1 when the run starts."""
    parser = args.parser
    if getattr(args, "checkpoint", "absent") is None and (args.resume or args.checkpoint_every):
        parser.error("--resume and --checkpoint-every need --checkpoint DIR")
    if args.run != "backprop":
        try:  # an optimiser option it does not take; --compile on where nothing compiles
            _settings(args, RUNS[args.run][0]).make_optimizer()
            compiler_for(args.backend, args.compile)
        except XpnnError as exc:
            parser.error(str(exc))
    try:
        xp = get_namespace(args.backend)
    except BackendUnavailable:
        return
    try:
        device = resolve_device(xp, args.device)
        resolve_dtype(xp, args.dtype, device)
        if args.run == "regression":
            datasets.check_interval(args.low, args.high)
        elif args.run == "binary-addition":
            datasets.check_bits(args.bits, datasets.MAX_ALL_PAIRS_BITS)
            if args.cell != "rnn" and args.activation != BinaryAddition.activation:
                parser.error(f"--activation applies to --cell rnn only, not {args.cell}")
        elif args.run == "adding-problem":
            datasets.check_steps(args.steps)
        elif hasattr(args, "maxlen"):  # the sine runs
            datasets.check_windows(args.maxlen)
    except XpnnError as exc:
        parser.error(str(exc))


def _train(args: argparse.Namespace) -> None:
    from xpnn import plotting

    if args.run == "backprop":
        notebooks.backprop_step(backend=args.backend, device=args.device, dtype=args.dtype)
        return
    kind, runner = RUNS[args.run]
    settings = _settings(args, kind)
    echo = None if args.json else print
    with float_errors_ignored():
        result = runner(settings, echo=echo, progress=not args.quiet)
    if args.plot is not None:
        if isinstance(settings, Sine):
            _plot_sine(settings, result, args.plot)
        else:
            title = (
                f"xpnn train {args.run}: {settings.backend}, lr {settings.lr:g}, "
                f"seed {settings.seed}"
            )
            plotting.loss_curve(result.train.history, args.plot, title=title)
        if echo is not None:
            echo(f"wrote {args.plot}")
    if isinstance(settings, Sine) and echo is not None:
        hint = printouts.sine_hint(result.metrics)
        if hint is not None:
            echo(hint)
    if args.json:
        _summary(settings, result)


def _diverged(args: argparse.Namespace, exc: TrainingDiverged) -> str:
    """One message: what happened, what the checkpoint holds, what to try."""
    text = f"training diverged: the loss at iteration {exc.iteration} is not finite. "
    checkpoint = getattr(args, "checkpoint", None)
    path = None if checkpoint is None else checkpoint / Checkpointer.FILENAME
    if path is not None and path.is_file():
        try:
            step = f" (iteration {load(path).step})"
        except CheckpointError:
            step = ""
        text += f"The checkpoint {path} holds the last finite state{step}. "
    else:
        text += "The parameters were restored to the last finite reading. "
    text += divergence_advice(
        lr=args.lr,
        clip=getattr(args, "clip", None),
        can_clip=hasattr(args, "clip"),
        momentum=args.momentum,
        init=getattr(args, "init", None),
        weight_init_std=getattr(args, "weight_init_std", None),
        flags=True,
    )
    if path is not None:
        text += ", starting afresh (a resumed run keeps its settings)"
    return text + "."


def _plot_sine(settings: Sine, result: notebooks.RunResult, path: Path) -> None:
    from xpnn import plotting

    data = datasets.sine_windows(settings.maxlen)
    step = data.t[1] - data.t[0]
    n_test = data.ds_test.shape[0]
    t_test = data.t[-n_test:]
    generated = result.metrics["generated"]
    t_gen = data.t[-1] + step * np.arange(1, len(generated) + 1)
    title = (
        f"RNN on a sine wave (notebook 3_3): maxlen {settings.maxlen}, "
        f"{settings.iters} iterations, {settings.backend}, lr {settings.lr:g}, seed {settings.seed}"
    )
    plotting.sine_figure(
        data.t, data.f, t_test, result.metrics["test_pred"], t_gen, generated, path, title=title
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "sweep":  # a sweep hands RUN's own options to its runs
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        _check(args)
    try:
        if args.command == "backends":
            _backends()
        elif args.command == "agree":
            return agree.run_agree(args)
        elif args.command == "sweep":
            return sweep.run_sweep(args, extra)
        else:
            _train(args)
    except TrainingDiverged as exc:
        print(f"xpnn: {_diverged(args, exc)}", file=sys.stderr)
        return 1
    except XpnnError as exc:
        print(f"xpnn: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # e.g. a --batch-size too large for this machine
        print(f"xpnn: error: out of memory ({exc}); try smaller sizes", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("xpnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
