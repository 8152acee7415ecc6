"""A settings class's fields as ``argparse`` options: flag, help, default, choices and
the parsing of the value all come from the fields (``xpnn.course.fields``), so the help
cannot drift from the run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from xpnn.course.fields import FLAG, Kind, Spec, specs
from xpnn.errors import XpnnValueError


def add_options(parser: argparse.ArgumentParser | Any, cls: type) -> None:
    """Add one option per command-line field of the settings class ``cls`` to
    ``parser`` (a parser or an argument group), in field order, with ``cls``'s
    defaults."""
    for spec in specs(cls):
        if spec.flag is None:
            continue
        kwargs: dict[str, Any] = {"dest": spec.name, "default": spec.default}
        kwargs["help"] = spec.help
        if spec.default is None and spec.unset is not None:  # else the formatter shows it
            kwargs["help"] = f"{spec.help} (default: {spec.unset})"
        if spec.kind is FLAG:
            kwargs["action"] = "store_true"
        else:
            if spec.kind is not None:
                kwargs["type"] = _argument_type(spec.kind)
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
        parser.add_argument(spec.flag, **kwargs)


def _argument_type(kind: Kind) -> Callable[[str], Any]:
    """``kind.parse`` with its complaint as argparse's (``argument --iters: ...``)."""

    def parse(text: str) -> Any:
        try:
            return kind.parse(text)
        except XpnnValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def command_line(cls: type) -> dict[str, Spec]:
    """The command-line fields of ``cls`` by option name (``hidden-size``)."""
    return {spec.flag[2:]: spec for spec in specs(cls) if spec.flag is not None}


def from_namespace(cls: type, args: argparse.Namespace) -> Any:
    """The settings ``cls`` with every command-line field from ``args``."""
    return cls(**{s.name: getattr(args, s.name) for s in command_line(cls).values()})


class _Refusing(argparse.ArgumentParser):
    """A parser whose complaint is an ``XpnnValueError``, not an exit."""

    def error(self, message: str) -> NoReturn:
        raise XpnnValueError(message)


def parse_options(cls: type, tokens: Sequence[str]) -> Any:
    """The settings ``cls`` that the options ``tokens`` (``["--iters", "5"]``) give.

    Raises
    ------
    XpnnValueError
        argparse's complaint: an unknown option, a bad value.
    """
    parser = _Refusing(prog="options", add_help=False)
    add_options(parser, cls)
    return from_namespace(cls, parser.parse_args(list(tokens)))
