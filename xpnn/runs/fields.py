"""What a settings field carries: its help, its command-line flag, its choices and its
kind of value; and the one check of a settings object's fields.

A field made by ``option`` is a setting: ``check_fields`` checks its value, and unless
``cli=False`` the ``xpnn`` command offers it as ``--name-with-dashes``. A subclass that
only changes a default redeclares the field plainly (``iters: int = 500``); its
metadata is found on the class that declared it with ``option``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from xpnn.errors import XpnnError, XpnnValueError, shown

Label = Callable[[str], str]
"""How a message names a field: ``str`` (the field name) in Python, its flag on the
command line."""


@dataclass(frozen=True)
class Kind:
    """A kind of value: ``what`` it is, how ``convert`` makes one from text, which Python
    values are of the kind (``is_type``), and the ``rules`` it obeys, each a test and the
    phrase that says it (``"must be at least 1"``), the first broken one reported."""

    what: str
    convert: Callable[[str], Any]
    is_type: Callable[[Any], bool]
    rules: tuple[tuple[Callable[[Any], bool], str], ...] = ()

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for.

        Raises
        ------
        XpnnValueError
            Text that is not of the kind, or a value that breaks a rule; the message
            names no field (the caller does).
        """
        try:
            value = self.convert(text)
        except XpnnError:
            raise
        except ValueError:
            msg = f"expected {self.what}, got {shown(text)}"
            raise XpnnValueError(msg) from None
        problem = self._broken(value, value if self.convert is int else text)
        if problem is not None:
            raise XpnnValueError(problem)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with the Python value ``value`` (None: nothing)."""
        if not self.is_type(value):
            return f"must be {self.what}, got {shown(value)}"
        return self._broken(value, shown(value))

    def _broken(self, value: Any, said: Any) -> str | None:
        for test, rule in self.rules:
            if not test(value):
                return f"{rule}, got {said}"
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past every float
        return False


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


INTEGER = Kind("an integer", int, _is_int)
COUNT = Kind("an integer", int, _is_int, ((lambda v: v >= 1, "must be at least 1"),))
SEED = Kind("an integer", int, _is_int, ((lambda v: v >= 0, "must be a non-negative integer"),))
FINITE = Kind("a number", float, _is_number, ((_finite, "must be finite"),))
POSITIVE = Kind("a number", float, _is_number, ((_positive, "must be positive and finite"),))
FRACTION = Kind(
    "a number",
    float,
    _is_number,
    ((_positive, "must be positive and finite"), (lambda v: v < 1, "must be below 1")),
)
RATE = Kind(
    "a number", float, _is_number, ((lambda v: _finite(v) and 0 <= v < 1, "must be in [0, 1)"),)
)
FLAG = Kind("True or False", bool, lambda v: isinstance(v, bool))
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

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` in this field (None: nothing)."""
        if value is None and self.optional:
            return None
        if self.choices is not None and not (isinstance(value, str) and value in self.choices):
            return f"must be one of {', '.join(self.choices)}, got {shown(value)}"
        return None if self.kind is None else self.kind.problem(value)


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
        problem = spec.problem(getattr(settings, spec.name))
        if problem is not None:
            msg = f"{label(spec.name)} {problem}"
            raise XpnnValueError(msg)


def flag_label(cls: type) -> Label:
    """A ``Label`` that names a field of ``cls`` by its flag and placeholder
    (``--checkpoint DIR``), for messages on the command line."""
    flags = {s.name: " ".join(filter(None, (s.flag, s.metavar))) for s in specs(cls) if s.flag}
    return lambda name: flags.get(name, name)
