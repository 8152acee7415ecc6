"""The agreement report: a table with notes for people, or JSON for programs."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from xpnn.cli.agree.compare import RELATIVE, TOLERANCES, Row
from xpnn.cli.agree.runs import REFERENCE


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2e}"


def _table(rows: list[Row]) -> list[str]:
    head = (
        "backend",
        "version",
        "device",
        "dtype",
        "run",
        "steps",
        "loss abs",
        "loss rel",
        "param abs",
        "param rel",
        "tol",
        "result",
    )
    cells = [head] + [
        (
            r.backend,
            r.version,
            r.device,
            r.dtype + ("" if r.reference.endswith(r.dtype) else f" vs {r.reference}"),
            r.run,
            str(r.steps),
            _fmt(r.loss_abs),
            _fmt(r.loss_rel),
            _fmt(r.param_abs),
            _fmt(r.param_rel),
            "-" if math.isnan(r.tolerance) else f"{r.tolerance:.0e}",
            r.status + (f": {r.error}" if r.error else ""),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in cells
    ]


def _json_row(row: Row) -> dict[str, Any]:
    """``row`` as a JSON object, with ``null`` for NaN."""
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(row).items()
    }


def report(rows: list[Row], skipped: list[str], ref_version: str, *, as_json: bool) -> int:
    """Print the table and its notes (or, with ``as_json``, one JSON object); return the
    exit status: 1 when a row failed."""
    failed = [r for r in rows if r.status in ("FAIL", "ERROR")]
    if as_json:
        print(
            json.dumps(
                {
                    "reference": f"{REFERENCE} {ref_version}",
                    "tolerances": TOLERANCES,
                    "relative": RELATIVE,
                    "skipped": skipped,
                    "rows": [_json_row(r) for r in rows],
                    "passed": not failed,
                },
                allow_nan=False,
            )
        )
        return 1 if failed else 0
    for line in _table(rows):
        print(line)
    notes = {}
    for r in rows:
        for note in r.notes:
            notes.setdefault(note, []).append(f"{r.backend}/{r.device}/{r.dtype}/{r.run}")
    for note, where in notes.items():
        print(f"note ({', '.join(where) if len(where) <= 3 else f'{len(where)} rows'}): {note}")
    print("")
    judged = [r for r in rows if r.status != "INFO"]
    pairs = list(dict.fromkeys(f"{r.backend} on {r.device}" for r in judged))
    runs, dtypes = len({r.run for r in judged}), len({r.dtype for r in judged})
    also = (
        " (compiled steps also with their eager step)"
        if any(r.reference.endswith(" eager") for r in judged)
        else ""
    )
    print(
        f"compared {', '.join(pairs)} with {REFERENCE}{also}: {runs} runs x {dtypes} dtypes, "
        f"{len(judged)} rows"
    )
    if failed:
        print(f"{len(failed)} of {len(judged)} rows exceed their tolerance or failed to run")
        return 1
    print(f"all {len(judged)} rows within tolerance")
    return 0
