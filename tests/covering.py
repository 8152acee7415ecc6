"""Gradient-check matrices cut to a covering subset for the default run."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest


def covering_cases(
    kinds: Sequence[Any], pairs: Sequence[Any], rest: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """``pytest.param(kind, pair, *r)`` for every kind x pair x r. One covering subset runs
    by default: each kind meets every pair and every ``r`` (``r`` number ``i`` goes with
    pair number ``i % len(pairs)``); the other cases are marked slow (``nox -s slow``)."""
    rest = list(rest)
    assert len(rest) >= len(pairs), "every pair needs an r to go with it"
    cases = []
    for kind, (k, pair), r in itertools.product(kinds, enumerate(pairs), rest):
        covering = rest.index(r) % len(pairs) == k
        marks = () if covering else (pytest.mark.slow,)
        cases.append(pytest.param(kind, pair, *r, marks=marks))
    return cases
