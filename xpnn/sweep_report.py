"""The end of a sweep: a summary per configuration, as a table and as a picture."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xpnn.sweep import row_key


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration's runs: how many, how many reached every answer exact (None
    where the run has no such measure), the median iteration of getting there, the
    median final loss of the runs that did not diverge, the median test error, and how
    many diverged."""

    config: dict[str, str]
    runs: int
    exact: int | None
    median_first_exact: float | None
    median_final_loss: float | None
    median_test_error: float | None
    diverged: int


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    configs: Sequence[dict[str, str]], rows: Sequence[dict[str, Any]]
) -> list[ConfigSummary]:
    """A ``ConfigSummary`` per configuration, in grid order, from the results rows."""
    by_config: dict[str, list[dict[str, Any]]] = {row_key(c, 0): [] for c in configs}
    for row in rows:
        by_config[row_key(row["config"], 0)].append(row)
    summaries = []
    for config in configs:
        mine = by_config[row_key(config, 0)]
        finished = [r for r in mine if r["diverged_at"] is None]
        has_exact = any("exact" in r.get("metrics", {}) for r in finished)
        reached = [r["first_exact"] for r in mine if r.get("first_exact") is not None]
        errors = [r["metrics"]["test_mse"] for r in finished if "test_mse" in r.get("metrics", {})]
        summaries.append(
            ConfigSummary(
                config=config,
                runs=len(mine),
                exact=len(reached) if has_exact or not finished else None,
                median_first_exact=_median(reached),
                median_final_loss=_median([r["final_loss"] for r in finished]),
                median_test_error=_median(errors),
                diverged=len(mine) - len(finished),
            )
        )
    return summaries


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def table(summaries: Sequence[ConfigSummary], keys: Sequence[str]) -> str:
    """The summaries as an aligned text table, one row per configuration."""
    head = [*keys, "runs", "reached 100%", "median iters to 100%", "median final loss"]
    with_errors = any(s.median_test_error is not None for s in summaries)
    head += ["median test MSE"] if with_errors else []
    head += ["diverged"]
    rows = [head]
    for s in summaries:
        reached = (
            "-"
            if s.exact is None
            else f"{s.exact}/{s.runs} ({100 * s.exact / max(s.runs, 1):.0f}%)"
        )
        cells = [s.config[k] for k in keys]
        cells += [str(s.runs), reached, _number(s.median_first_exact, ".0f")]
        cells += [_number(s.median_final_loss)]
        cells += [_number(s.median_test_error)] if with_errors else []
        cells += [str(s.diverged)]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def figure(summaries: Sequence[ConfigSummary], path: str | Path, title: str) -> None:
    """One horizontal bar a configuration: the fraction of seeds that reached 100%
    (binary addition), or else the median test error; diverged runs are noted."""
    from xpnn.plotting import new_figure, save

    labels = [" ".join(f"{k}={v}" for k, v in s.config.items()) for s in summaries]
    success = all(s.exact is not None for s in summaries)
    if success:
        values = [s.exact / s.runs if s.runs else 0.0 for s in summaries]
        xlabel, limit = "fraction of seeds that reached 100% exact", (0, 1.05)
    else:
        values = [s.median_test_error or 0.0 for s in summaries]
        xlabel, limit = "median test MSE (lower is better)", None
    fig = new_figure(8, 1.2 + 0.4 * len(summaries))
    ax = fig.subplots()
    positions = list(range(len(summaries)))[::-1]
    ax.barh(positions, values, color="tab:blue")
    ax.set_yticks(positions, labels)
    for y, value, s in zip(positions, values, summaries, strict=True):
        note = f" {value:.0%}" if success else f" {value:.3g}"
        note += f" ({s.diverged} diverged)" if s.diverged else ""
        ax.text(value, y, note, va="center")
    ax.set(xlabel=xlabel, title=title)
    if limit:
        ax.set_xlim(*limit)
    ax.margins(x=0.15)
    save(fig, path)
