"""A sweep's grid: RUN's settings outside the grid, the grid's keys and values (each checked
once, before any task is sent), and the seeds; ``build_sweep`` makes it from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xpnn.cli.options import command_line, parse_options
from xpnn.course.fields import Spec, flag_label
from xpnn.course.registry import RUNS
from xpnn.errors import XpnnValueError

MAX_RUNS = 100_000
"""The most runs (configurations x seeds) one sweep takes. The client holds a task for
each at once, and 100,000 runs of a second are about 2 hours on 16 workers; a larger
sweep is refused from its sizes alone, before anything is made: split it."""


RESERVED = {
    "seed": "the seeds are 0 .. --seeds N - 1",
    "resume": "a sweep resumes from its --out file",
    "checkpoint": "sweep runs keep no checkpoints",
    "checkpoint-every": "sweep runs keep no checkpoints",
    "json": "the sweep writes JSON lines to --out",
    "quiet": "sweep runs are always quiet",
    "plot": "--plot is the sweep's picture",
}
"""Train options a sweep sets itself, and why they cannot be given."""


@dataclass(frozen=True)
class Sweep:
    """RUN, RUN's settings outside the grid (``base``), the grid (option name, such as
    ``hidden-size``, to its values: each as typed, to the value it stands for) and the
    number of seeds."""

    run: str
    base: Any
    grid: dict[str, dict[str, Any]]
    seeds: int

    def configs(self) -> list[dict[str, str]]:
        """Every combination of grid values as typed, the first key varying slowest."""
        keys = list(self.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]

    def settings(self, config: dict[str, str], seed: int) -> Any:
        """The settings of one run: ``base`` with ``config``'s values and ``seed``."""
        values = {key.replace("-", "_"): self.grid[key][text] for key, text in config.items()}
        return dataclasses.replace(self.base, seed=seed, **values)

    def tasks(self) -> list[tuple[dict[str, str], int]]:
        """Every ``(config, seed)`` pair, in a stable order."""
        return [(config, seed) for config in self.configs() for seed in range(self.seeds)]


def row_key(config: dict[str, str], seed: int) -> str:
    """The identity of one run in the results file."""
    return json.dumps([config, seed], sort_keys=True)


def build_sweep(args: argparse.Namespace, options: Sequence[str]) -> Sweep:
    """The sweep the command line describes: each grid key checked against RUN's
    fields, the size checked before any value is parsed, each value parsed once, then
    the configurations that can fail checked (``_check_configs``), so no bad value
    reaches a worker.

    Raises
    ------
    XpnnValueError
        An empty or malformed grid, an unknown, reserved or repeated key, a repeated
        value, a value RUN refuses, more than ``MAX_RUNS`` runs, a backend that cannot
        run here.
    """
    if not args.grid:
        msg = "the grid is empty: give --grid KEY=V1,V2 (an option of RUN and its values)"
        raise XpnnValueError(msg)
    kind = RUNS[args.run].settings
    known = command_line(kind)
    items: dict[str, str] = {}
    for item in args.grid:
        key, sep, _ = item.partition("=")
        key = key.removeprefix("--")
        if not item.isprintable():
            msg = f"--grid {short(item)} holds a newline or another control character"
            raise XpnnValueError(msg)
        if not sep or not key:
            msg = f"--grid takes KEY=V1,V2,... got {short(item)}"
            raise XpnnValueError(msg)
        _check_key(key, args.run, known)
        if key in items:
            msg = f"grid key {key!r} is given twice"
            raise XpnnValueError(msg)
        items[key] = item
    given = {o.split("=")[0].removeprefix("--").replace("_", "-") for o in options}
    for key in sorted(given & set(RESERVED)):
        msg = f"--{key} cannot be given to a sweep: {RESERVED[key]}"
        raise XpnnValueError(msg)
    for key in sorted(given & set(items)):
        msg = f"--{key} is both a grid key and a fixed option; give it once"
        raise XpnnValueError(msg)
    configs = math.prod(item.count(",") + 1 for item in items.values())
    if configs * args.seeds > MAX_RUNS:
        msg = (
            f"the sweep has {configs * args.seeds} runs ({configs} configuration(s) x "
            f"{args.seeds} seed(s)); one sweep takes at most {MAX_RUNS}: split it"
        )
        raise XpnnValueError(msg)
    grid = {key: _values(key, item, known[key]) for key, item in items.items()}
    sweep = Sweep(args.run, parse_options(kind, options), grid, args.seeds)
    _check_configs(sweep)
    return sweep


def _check_key(key: str, run: str, known: dict[str, Spec]) -> None:
    if key in RESERVED:
        msg = f"grid key {key!r} cannot be swept: {RESERVED[key]}"
        raise XpnnValueError(msg)
    if key not in known:
        names = ", ".join(k for k in known if k not in RESERVED)
        msg = f"unknown grid key {short(key)} for {run}; its options are: {names}"
        raise XpnnValueError(msg)


def _values(key: str, item: str, spec: Spec) -> dict[str, Any]:
    """The values of ``item`` (``KEY=V1,V2``) as typed, each to the value it stands for;
    a value given twice, even as other text (``0.1,0.10``), is refused."""
    values: dict[str, Any] = {}
    seen: dict[Any, str] = {}
    for text in (v.strip() for v in item.partition("=")[2].split(",")):
        if not text:
            msg = f"--grid takes KEY=V1,V2,... got {short(item)}"
            raise XpnnValueError(msg)
        try:
            value = spec.parse(text)
        except XpnnValueError as exc:
            msg = f"grid value {key}={text}: argument --{key}: {exc}"
            raise XpnnValueError(msg) from None
        if value in seen:
            again = "twice" if seen[value] == text else f"twice (as {seen[value]!r})"
            msg = f"grid key {key!r} lists the value {text!r} {again}; give each value once"
            raise XpnnValueError(msg)
        seen[value], values[text] = text, value
    return values


def _check_configs(sweep: Sweep) -> None:
    """Check the configurations that can fail, not all of them: the grid keys fall into
    groups that RUN's settings judge together (``RELATIONS``); each group's every
    combination is checked with the other keys at their first value, so each check is of
    a real configuration and every value and every related combination is seen (a
    1000 x 100 grid of unrelated keys is 1100 checks). Each distinct backend, device and
    dtype is also checked on its backend: usable here, the device the backend's, the
    dtype one it holds."""
    label = flag_label(type(sweep.base))
    first = {key: next(iter(values)) for key, values in sweep.grid.items()}
    for keys in _groups(sweep):
        for values in itertools.product(*(sweep.grid[key] for key in keys)):
            config = {**first, **dict(zip(keys, values, strict=True))}
            try:
                sweep.settings(config, 0).check(label)
            except XpnnValueError as exc:
                msg = f"configuration {describe(config)}: {exc}"
                raise XpnnValueError(msg) from None


def _groups(sweep: Sweep) -> list[list[str]]:
    """The grid keys, grouped where RUN's ``RELATIONS`` tie them, in grid order."""
    groups = [{key} for key in sweep.grid]
    for related in type(sweep.base).RELATIONS:
        tied = [g for g in groups if any(key.replace("-", "_") in related for key in g)]
        if len(tied) > 1:
            groups = [g for g in groups if g not in tied] + [set().union(*tied)]
    return [[key for key in sweep.grid if key in group] for group in groups]


def describe(config: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


def short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def identity(sweep: Sweep) -> dict[str, Any]:
    """What names a sweep in its results file: RUN, every option outside the grid
    (defaults included, so ``--iters 3000`` and ``--iters=3000`` agree) and the grid.
    The number of seeds is not part of it: a rerun with more seeds adds the new ones."""
    skip = {"seed", "checkpoint", "checkpoint_every", "resume"}
    skip |= {key.replace("-", "_") for key in sweep.grid}
    names = sorted(s.name for s in command_line(type(sweep.base)).values())
    return {
        "run": sweep.run,
        "options": {name: getattr(sweep.base, name) for name in names if name not in skip},
        "grid": {k: list(v) for k, v in sweep.grid.items()},
    }
