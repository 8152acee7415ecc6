"""Test matrices cut to a covering subset for the default run."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest


def covering_cases(
    kinds: Sequence[Any], pairs: Sequence[Any], rest: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """``pytest.param(kind, pair, *r)`` for every kind x pair x r, the cases beyond one
    covering subset marked slow (``nox -s slow``).

    The subset runs every kind with every ``r``, the pair of ``r`` number ``i`` for kind
    number ``k`` being pair number ``(i + k) % len(pairs)``: so each kind meets every pair
    (given at least as many ``r`` as pairs), and, given at least as many kinds as pairs,
    each ``r`` meets every pair too. ``len(kinds) * len(rest)`` cases cover every two
    values of the three factors.
    """
    rest = list(rest)
    assert len(rest) >= len(pairs), "every pair needs an r to go with it"
    cases = []
    for (k, kind), (j, pair), (i, r) in itertools.product(
        enumerate(kinds), enumerate(pairs), enumerate(rest)
    ):
        covering = (i + k) % len(pairs) == j
        marks = () if covering else (pytest.mark.slow,)
        cases.append(pytest.param(kind, pair, *r, marks=marks))
    return cases
