"""The end of a sweep: a summary per configuration, as a table and as a picture."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXACT, TEST_MSE = "exact pairs", "test MSE"


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration's runs.

    ``exact`` counts the runs that reached every answer exact (None where the run has no
    such measure), ``median_first_exact`` is the median iteration of getting there;
    ``median_final_loss`` is over the runs that did not diverge; ``scores`` holds each
    finished run's ``score`` (``EXACT``: the fraction of operand pairs added exactly;
    ``TEST_MSE``: the test error; ``""``: none); ``diverged`` counts diverged runs.
    """

    config: dict[str, str]
    runs: int
    exact: int | None
    median_first_exact: float | None
    median_final_loss: float | None
    score: str
    scores: tuple[float, ...]
    diverged: int

    @property
    def median_score(self) -> float | None:
        return _median(self.scores)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _scores(rows: Sequence[dict[str, Any]]) -> tuple[str, tuple[float, ...]]:
    metrics = [r.get("metrics", {}) for r in rows]
    if metrics and all("exact" in m for m in metrics):
        return EXACT, tuple(m["exact"] / m["total"] for m in metrics)
    if metrics and all("test_mse" in m for m in metrics):
        return TEST_MSE, tuple(m["test_mse"] for m in metrics)
    return "", ()


def _key(config: dict[str, str]) -> tuple:
    """A configuration as a dictionary key."""
    return tuple(sorted(config.items()))


def summarize(
    configs: Sequence[dict[str, str]], rows: Sequence[dict[str, Any]]
) -> list[ConfigSummary]:
    """A ``ConfigSummary`` per configuration, in grid order, from the results rows."""
    by_config: dict[tuple, list[dict[str, Any]]] = {_key(c): [] for c in configs}
    for row in rows:
        by_config[_key(row["config"])].append(row)
    summaries = []
    for config in configs:
        mine = by_config[_key(config)]
        finished = [r for r in mine if r["diverged_at"] is None]
        score, scores = _scores(finished)
        reached = [r["first_exact"] for r in mine if r.get("first_exact") is not None]
        summaries.append(
            ConfigSummary(
                config=config,
                runs=len(mine),
                exact=len(reached) if score == EXACT or not finished else None,
                median_first_exact=_median(reached),
                median_final_loss=_median([r["final_loss"] for r in finished]),
                score=score,
                scores=scores,
                diverged=len(mine) - len(finished),
            )
        )
    return summaries


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _score_text(s: ConfigSummary) -> str:
    if s.median_score is None:
        return "-"
    return f"{s.median_score:.1%}" if s.score == EXACT else f"{s.median_score:.4g}"


def table(summaries: Sequence[ConfigSummary], keys: Sequence[str]) -> str:
    """The summaries as an aligned text table, one row per configuration."""
    score = next((s.score for s in summaries if s.score), "")
    head = [*keys, "runs", "reached 100%", "median iters to 100%", "median final loss"]
    head += [f"median {score}"] if score else []
    head += ["diverged"]
    rows = [head]
    for s in summaries:
        reached = "-" if s.exact is None else f"{s.exact}/{s.runs} ({s.exact / max(s.runs, 1):.0%})"
        cells = [s.config[k] for k in keys]
        cells += [str(s.runs), reached, _number(s.median_first_exact, ".0f")]
        cells += [_number(s.median_final_loss)]
        cells += [_score_text(s)] if score else []
        cells += [str(s.diverged)]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def figure(summaries: Sequence[ConfigSummary], path: str | Path, title: str) -> None:
    """One row a configuration. Where runs can be all exact (binary addition): the
    fraction of seeds that got there, and beside it each seed's fraction of operand
    pairs added exactly (dots) with the median (bar). Otherwise each seed's test error
    with the median. Diverged runs are counted in the labels."""
    from xpnn.plotting import new_figure, save

    exact = all(s.exact is not None for s in summaries)
    panels = 2 if exact else 1
    fig = new_figure(6 + 4 * panels, 1.4 + 0.45 * len(summaries))
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)
    positions = list(range(len(summaries)))[::-1]
    labels = []
    for s in summaries:
        label = " ".join(f"{k}={v}" for k, v in s.config.items())
        labels.append(label + (f" ({s.diverged} diverged)" if s.diverged else ""))
    ax = axes[0][0]
    if exact:
        rates = [s.exact / s.runs if s.runs else 0.0 for s in summaries]
        ax.barh(positions, rates, color="tab:green")
        for y, rate, s in zip(positions, rates, summaries, strict=True):
            ax.text(rate + 0.02, y, f"{s.exact}/{s.runs}", va="center")
        ax.set(xlim=(0, 1.15), xlabel="seeds that reached 100% exact")
        ax = axes[0][1]
    for y, s in zip(positions, summaries, strict=True):
        if s.scores:
            ax.barh(y, s.median_score, color="0.85")
            ax.plot(s.scores, [y] * len(s.scores), "o", color="tab:blue", alpha=0.7)
    score = next((s.score for s in summaries if s.score), "")
    if score == EXACT:
        ax.set(xlim=(0, 1.02), xlabel="operand pairs added exactly (dots: seeds; bar: median)")
    else:
        ax.set(xscale="log", xlabel=f"{score or 'score'} (dots: seeds; bar: median)")
    axes[0][0].set_yticks(positions, labels)
    fig.suptitle(title)
    save(fig, path)
