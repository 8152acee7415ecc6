"""The backends a test run covers: ``XPNN_BACKENDS``, read in one place."""

from __future__ import annotations

import os

import pytest

from xpnn.backends import BACKENDS


def backends_named() -> bool:
    """Whether ``XPNN_BACKENDS`` names backends (rather than ``all``, the default)."""
    return os.environ.get("XPNN_BACKENDS", "all").strip() not in ("", "all")


def selected_backends() -> list[str]:
    """``XPNN_BACKENDS`` (a comma list of backend names, or ``all``, the default) as a
    list of names; an unknown name stops the run with a usage error."""
    if not backends_named():
        return list(BACKENDS)
    raw = os.environ["XPNN_BACKENDS"]
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"XPNN_BACKENDS names unknown backends: {unknown}")
    return names
