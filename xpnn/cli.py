"""The ``xpnn`` command: ``xpnn backends``, ``xpnn train {backprop,regression,
binary-addition,sine}``.

Every failure the user can cause ends in one line on stderr and a non-zero exit status
(2 for a bad command line, 1 for anything else), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from xpnn import agree
from xpnn.backend import BACKENDS, backend_info
from xpnn.checkpoint import load
from xpnn.course import notebooks
from xpnn.course.settings import BinaryAddition, Regression, Sine, Training
from xpnn.errors import CheckpointError, TrainingDiverged, XpnnError
from xpnn.training.resume import Checkpointer, check_folder


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse(text: str, convert: type, what: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _parse(text, int, "an integer")
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


def _checkpoint_folder(text: str) -> Path:
    try:
        return check_folder(text)
    except CheckpointError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed(text: str) -> int:
    value = _parse(text, int, "an integer")
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="numpy", choices=BACKENDS, help="array backend")
    p.add_argument("--device", default=None, help="device name, e.g. cpu, cuda:0")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--seed", type=_seed, default=0, help="seed of weights and data")


def _add_training(p: argparse.ArgumentParser, *, iters: int, lr: float, log_every: int) -> None:
    _add_common(p)
    p.add_argument("--iters", type=_positive_int, default=iters, help=f"default {iters}")
    p.add_argument("--lr", type=_positive_float, default=lr, help=f"learning rate ({lr})")
    p.add_argument("--batch-size", type=_positive_int, default=1)
    p.add_argument("--log-every", type=_positive_int, default=log_every)
    p.add_argument(
        "--plot",
        type=_writable_path,
        default=None,
        metavar="FILE",
        help="write a PNG figure (needs the plot extra)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary only")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--momentum", type=_fraction, default=None, help="SGD with this momentum, in (0, 1)"
    )
    p.add_argument(
        "--checkpoint",
        type=_checkpoint_folder,
        default=None,
        metavar="DIR",
        help=f"keep DIR/{Checkpointer.FILENAME} current (DIR must exist)",
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``xpnn`` command."""
    parser = _Parser(prog="xpnn", description="The course's networks on any array backend.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("backends", help="which backends run here, or why not")
    agree.add_arguments(sub.add_parser("agree", help="seeded runs on every backend vs numpy"))
    train = sub.add_parser("train", help="run one of the course's notebooks")
    runs = train.add_subparsers(dest="run", required=True, parser_class=_Parser)

    p = runs.add_parser("backprop", help="seed 001: one backpropagation step, printed")
    _add_common(p)

    p = runs.add_parser("regression", help="notebook 1_3: SGD on 3*x0 + 2*x1")
    _add_training(p, iters=1000, lr=0.07, log_every=100)
    p.add_argument("--hidden-size", type=_positive_int, default=10)
    p.add_argument("--activation", default="relu", choices=("relu", "sigmoid", "tanh"))
    p.add_argument("--low", type=_finite_float, default=0.0, help="inputs uniform in [low, high)")
    p.add_argument("--high", type=_finite_float, default=1.0)

    p = runs.add_parser("binary-addition", help="notebook 3_1: an RNN learns binary addition")
    _add_training(p, iters=10_000, lr=0.1, log_every=100)
    p.add_argument("--hidden-size", type=_positive_int, default=16)
    p.add_argument("--activation", default="sigmoid", choices=("sigmoid", "tanh", "relu"))
    p.add_argument("--init", default="std", choices=("std", "xavier", "he"))
    p.add_argument("--weight-init-std", type=_positive_float, default=1.0)
    p.add_argument("--bits", type=int, default=8, help="bits per number (2 to 11)")
    p.add_argument("--truncate", type=_positive_int, default=None, help="truncated BPTT block")
    p.add_argument("--clip", type=_positive_float, default=None, help="global gradient norm cap")

    p = runs.add_parser("sine", help="notebook 3_3: a many-to-one RNN on a sine wave")
    _add_training(p, iters=500, lr=0.1, log_every=100)
    p.add_argument("--hidden-size", type=_positive_int, default=5)
    p.add_argument("--maxlen", type=_positive_int, default=2, help="window length")
    p.add_argument("--weight-init-std", type=_positive_float, default=0.01)
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
                "yes" if info.usable else f"no: {info.reason}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))


def _settings(args: argparse.Namespace, kind: type[Training]) -> Training:
    """The run's settings object, filled from the options of the same names."""
    return kind(**{f.name: getattr(args, f.name) for f in fields(kind) if hasattr(args, f.name)})


def _summary(args: argparse.Namespace, result: notebooks.RunResult) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    metrics = {k: v for k, v in result.metrics.items() if k not in ("generated", "test_pred")}
    print(
        json.dumps(
            {
                "config": config,
                "losses": [[i, v] for i, v in result.train.history],
                **metrics,
                "seconds": round(result.seconds, 4),
                "train_seconds": round(result.train.seconds, 4),
            }
        )
    )


def _train(args: argparse.Namespace) -> None:
    from xpnn import plotting

    if args.run == "backprop":
        notebooks.backprop_step(backend=args.backend, device=args.device, dtype=args.dtype)
        return
    with np.errstate(all="ignore"):  # overflow ends in TrainingDiverged, not in warnings
        result = _run(args)
    if args.plot is not None:
        if args.run == "sine":
            _plot_sine(args, result, plotting)
        else:
            plotting.loss_curve(result.train.history, args.plot, title=f"xpnn train {args.run}")
        if not (args.quiet or args.json):
            print(f"wrote {args.plot}")
    if args.json:
        _summary(args, result)


RUNS: dict[str, tuple[type[Training], Callable[..., notebooks.RunResult]]] = {
    "regression": (Regression, notebooks.regression),
    "binary-addition": (BinaryAddition, notebooks.binary_addition),
    "sine": (Sine, notebooks.sine),
}


def _run(args: argparse.Namespace) -> notebooks.RunResult:
    kind, runner = RUNS[args.run]
    return runner(_settings(args, kind), echo=None if (args.quiet or args.json) else print)


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
    tips = [f"a lower --lr than {args.lr:g}"]
    if getattr(args, "clip", "absent") is None:
        tips.append("--clip 1.0")
    if getattr(args, "momentum", None) is not None:
        tips.append(f"a lower --momentum than {args.momentum:g}")
    if getattr(args, "init", None) == "std":
        tips.append("--init xavier")
    if hasattr(args, "weight_init_std"):
        tips.append(f"a smaller --weight-init-std than {args.weight_init_std:g}")
    joined = tips[0] if len(tips) == 1 else f"{', '.join(tips[:-1])} or {tips[-1]}"
    text += f"Try {joined}"
    if path is not None:
        text += ", starting afresh (a resumed run keeps its settings)"
    return text + "."


def _plot_sine(args: argparse.Namespace, result: notebooks.RunResult, plotting: Any) -> None:
    from xpnn.datasets import sine_windows

    data = sine_windows(args.maxlen)
    step = data.t[1] - data.t[0]
    n_test = data.ds_test.shape[0]
    t_test = data.t[-n_test:]
    generated = result.metrics["generated"]
    t_gen = data.t[-1] + step * np.arange(1, len(generated) + 1)
    plotting.sine_figure(
        data.t, data.f, t_test, result.metrics["test_pred"], t_gen, generated, args.plot
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "checkpoint", "absent") is None and (args.resume or args.checkpoint_every):
        parser.error("--resume and --checkpoint-every need --checkpoint DIR")
    try:
        if args.command == "backends":
            _backends()
        elif args.command == "agree":
            return agree.run_agree(args)
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
