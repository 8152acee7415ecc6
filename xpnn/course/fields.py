"""What a settings field carries: its help, its command-line flag, its choices and its
kind of value; and the one check of a settings object's fields.

A field made by ``option`` is a setting: ``check_fields`` checks its value, and unless
``cli=False`` the ``xpnn`` command offers it as ``--name-with-dashes``. A subclass that
only changes a default redeclares the field plainly (``iters: int = 500``); its
metadata is found on the class that declared it with ``option``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from xpnn.errors import (
    MAX_SIZE,
    XpnnError,
    XpnnValueError,
    check_choice,
    check_finite,
    check_integer,
    check_positive,
    shown,
)

Label = Callable[[str], str]
"""How a message names a field: ``str`` (the field name) in Python, its flag on the
command line."""


@dataclass(frozen=True)
class Kind:
    """A kind of value: ``what`` it is, how ``convert`` makes one from text, and the
    validator (``xpnn.errors``) that checks a value, called as ``check(value, name)``;
    None where whatever takes the value checks it (an optimiser its learning rate)."""

    what: str
    convert: Callable[[str], Any]
    check: Callable[[Any, str], Any] | None = None

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for (not yet checked: the settings check it once).

        Raises
        ------
        XpnnValueError
            Text that is not of the kind; the message names no field (the caller does).
        """
        try:
            return self.convert(text)
        except ValueError:
            msg = f"expected {self.what}, got {shown(text)}"
            raise XpnnValueError(msg) from None


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{name} must be True or False, got {shown(value)}"
        raise XpnnValueError(msg, argument=name)
    return value


INTEGER = Kind("an integer", int, functools.partial(check_integer, minimum=-MAX_SIZE))
COUNT = Kind("an integer", int, check_integer)
SEED = Kind("an integer", int, functools.partial(check_integer, minimum=0))
FINITE = Kind("a number", float, check_finite)
POSITIVE = Kind("a number", float, check_positive)
NUMBER = Kind("a number", float)
"""A number that what takes it checks (an optimiser's hyperparameters)."""
FLAG = Kind("True or False", bool, _flag)
"""An on/off setting: a flag without a value on the command line."""


def option(
    default: Any,
    help: str,
    *,
    kind: Kind | None = None,
    choices: tuple[str, ...] | None = None,
    unset: str | Callable[[type], str] | None = None,
    optional: bool | None = None,
    metavar: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field that is a setting.

    Parameters
    ----------
    default
        The field's default.
    help
        What it sets, as the command's ``--help`` says it.
    kind, choices
        The kind of its values, or the names it takes (None: any value).
    unset
        What None means, for the help (``"none"``); a callable of the settings class for
        a meaning that depends on the class's other defaults.
    optional
        Whether None is a value (default: whether ``default`` is None).
    metavar
        The placeholder of its value in the help (``DIR``).
    cli
        Whether ``xpnn train`` has a flag for it.
    """
    metadata = {
        "help": help,
        "kind": kind,
        "choices": choices,
        "unset": unset,
        "optional": default is None if optional is None else optional,
        "metavar": metavar,
        "cli": cli,
    }
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Spec:
    """A settings class's field, as ``option`` described it, with the class's default;
    ``flag`` is None for a field the command line does not offer."""

    name: str
    default: Any
    help: str
    flag: str | None
    kind: Kind | None
    choices: tuple[str, ...] | None
    optional: bool
    metavar: str | None
    unset: str | None

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for (a choice must be one of ``choices``).

        Raises
        ------
        XpnnValueError
            A message that names no field.
        """
        if self.choices is not None and text not in self.choices:
            msg = f"invalid choice: {shown(text)} (choose from {', '.join(self.choices)})"
            raise XpnnValueError(msg)
        return text if self.kind is None else self.kind.parse(text)

    def check(self, value: Any, name: str) -> None:
        """Refuse ``value`` for this field, naming it ``name``."""
        if value is None and self.optional:
            return
        if self.choices is not None:
            check_choice(value, name, self.choices)
        elif self.kind is not None and self.kind.check is not None:
            self.kind.check(value, name)


@functools.cache
def specs(cls: type) -> tuple[Spec, ...]:
    """Every setting of the settings class ``cls``, in field order."""
    found = []
    for f in fields(cls):
        metadata = _declared(cls, f.name)
        if metadata is None:
            continue
        unset = metadata["unset"]
        found.append(
            Spec(
                name=f.name,
                default=None if f.default is MISSING else f.default,
                help=metadata["help"],
                flag="--" + f.name.replace("_", "-") if metadata["cli"] else None,
                kind=metadata["kind"],
                choices=metadata["choices"],
                optional=metadata["optional"],
                metavar=metadata["metavar"],
                unset=unset(cls) if callable(unset) else unset,
            )
        )
    return tuple(found)


def _declared(cls: type, name: str) -> Any:
    """The ``option`` metadata of field ``name``, from the nearest class declaring it."""
    for klass in cls.__mro__:
        declared = klass.__dict__.get("__dataclass_fields__", {}).get(name)
        if declared is not None and "help" in declared.metadata:
            return declared.metadata
    return None


def check_fields(settings: Any, label: Label = str) -> None:
    """Check every setting of ``settings`` against its kind and choices.

    Raises
    ------
    XpnnValueError
        The first wrong value, named by ``label(field name)``.
    """
    for spec in specs(type(settings)):
        spec.check(getattr(settings, spec.name), label(spec.name))


def relabeled(exc: XpnnError, label: Label) -> XpnnError:
    """``exc`` (about a field, ``exc.argument``) with the field named by ``label`` (its
    flag on the command line), of the same class."""
    name = exc.argument
    text = str(exc)
    if name is None or label(name) == name or label(name) in text:
        return exc
    text = label(name) + text[len(name) :] if text.startswith(name) else f"{label(name)}: {text}"
    return type(exc)(text, argument=name)


def flag_label(cls: type) -> Label:
    """A ``Label`` that names a field of ``cls`` by its flag and placeholder
    (``--checkpoint DIR``), for messages on the command line."""
    flags = {s.name: " ".join(filter(None, (s.flag, s.metavar))) for s in specs(cls) if s.flag}
    return lambda name: flags.get(name, name)
