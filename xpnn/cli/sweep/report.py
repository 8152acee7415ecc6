"""The end of a sweep: a summary per configuration, as a table and as a picture."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXACT, TEST_MSE = "exact pairs", "test MSE"
CONTINUATION = "continuation MSE"  # the sine runs': the generated wave against the sine
EVAL_LOSS = "loss on all pairs"  # binary addition's fixed evaluation set
SCORES = (("exact", EXACT), ("generated_mse", CONTINUATION), ("test_mse", TEST_MSE))
"""Each run's measure, the first of these its rows all have: what the run exists to show."""


@dataclass(frozen=True)
class ConfigSummary:
    """One configuration's runs.

    ``exact`` counts the runs that reached every answer exact (None where the run has no
    such measure), ``first_exact`` holds the iteration each of them got there (its median
    is ``median_first_exact``); ``median_eval_loss`` is the median, over the runs that did
    not diverge, of the loss on a fixed evaluation set (binary addition: every operand
    pair; None where the rows have none: there ``scores`` is the fixed-set measure);
    ``scores`` holds each finished run's ``score`` (``EXACT``: the fraction of operand
    pairs added exactly; ``TEST_MSE``: the test error; ``""``: none); ``diverged``
    counts diverged runs. ``curves`` holds each run's test curve (``[iteration, test
    MSE]`` pairs) where the run records one, a diverged run's to its last finite
    reading; ``baseline`` the median of the finished runs' ``baseline_mse``, if any.
    """

    config: dict[str, str]
    runs: int
    exact: int | None
    first_exact: tuple[int, ...]
    median_eval_loss: float | None
    score: str
    scores: tuple[float, ...]
    diverged: int
    curves: tuple[tuple[tuple[int, float], ...], ...] = ()
    baseline: float | None = None

    @property
    def median_first_exact(self) -> float | None:
        return _median(self.first_exact)

    @property
    def median_score(self) -> float | None:
        return _median(self.scores)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _scores(rows: Sequence[dict[str, Any]]) -> tuple[str, tuple[float, ...]]:
    metrics = [r.get("metrics", {}) for r in rows]
    for key, score in SCORES:
        if metrics and all(key in m for m in metrics):
            if key == "exact":
                return score, tuple(m["exact"] / m["total"] for m in metrics)
            return score, tuple(m[key] for m in metrics)
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
        losses = [r["metrics"]["eval_loss"] for r in finished if "eval_loss" in r["metrics"]]
        summaries.append(
            ConfigSummary(
                config=config,
                runs=len(mine),
                exact=len(reached) if score == EXACT or not finished else None,
                first_exact=tuple(reached),
                median_eval_loss=_median(losses) if len(losses) == len(finished) else None,
                score=score,
                scores=scores,
                diverged=len(mine) - len(finished),
                curves=tuple(tuple(map(tuple, r["curve"])) for r in mine if r.get("curve")),
                baseline=_median(
                    [
                        r["metrics"]["baseline_mse"]
                        for r in finished
                        if "baseline_mse" in r["metrics"]
                    ]
                ),
            )
        )
    return summaries


def median_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The median over ``curves`` at each iteration, of the curves that reach it (a
    diverged run's curve stops early)."""
    at: dict[int, list[float]] = {}
    for curve in curves:
        for iteration, value in curve:
            at.setdefault(iteration, []).append(value)
    return [(i, statistics.median(at[i])) for i in sorted(at)]


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _score_text(s: ConfigSummary) -> str:
    if s.median_score is None:
        return "-"
    return f"{s.median_score:.1%}" if s.score == EXACT else f"{s.median_score:.4g}"


def table(summaries: Sequence[ConfigSummary], keys: Sequence[str]) -> str:
    """The summaries as an aligned text table, one row per configuration."""
    score = next((s.score for s in summaries if s.score), "")
    evaluated = any(s.median_eval_loss is not None for s in summaries)
    exact = score == EXACT  # the columns follow the run's own measures
    head = [*keys, "runs"]
    head += ["reached 100%", "median iters to 100%"] if exact else []
    head += [f"median {EVAL_LOSS}"] if evaluated else []
    head += [f"median {score}"] if score else []
    head += ["diverged"]
    rows = [head]
    for s in summaries:
        reached = "-" if s.exact is None else f"{s.exact}/{s.runs} ({s.exact / max(s.runs, 1):.0%})"
        cells = [s.config[k] for k in keys]
        cells += [str(s.runs)]
        cells += [reached, _number(s.median_first_exact, ".0f")] if exact else []
        cells += [_number(s.median_eval_loss)] if evaluated else []
        cells += [_score_text(s)] if score else []
        cells += [str(s.diverged)]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _name(s: ConfigSummary) -> str:
    return " ".join(f"{k}={v}" for k, v in s.config.items())


def conclusion(summaries: Sequence[ConfigSummary]) -> str:
    """What the sweep shows, in a few sentences: which configurations learned (every
    seed exact) and how fast, which did in some seeds, which in none; or, without an
    exact measure, the best and the worst median test error."""
    done = [s for s in summaries if s.runs]
    if not done:
        return "no finished runs yet"
    if all(s.exact is not None for s in done):
        every = sorted((s for s in done if s.exact == s.runs), key=lambda s: s.median_first_exact)
        some = [s for s in done if 0 < s.exact < s.runs]
        none = [s for s in done if s.exact == 0]
        lines = []
        if every:
            fast = ", ".join(f"{_name(s)} ({s.median_first_exact:.0f})" for s in every)
            lines.append(
                f"Every seed learned to add all pairs exactly with {fast}: median iterations "
                "to get there in brackets, fastest first."
            )
        if some:
            part = ", ".join(f"{_name(s)} ({s.exact}/{s.runs} seeds)" for s in some)
            lines.append(f"Some seeds learned with {part}.")
        if none:
            best = max(none, key=lambda s: s.median_score or 0.0)
            lines.append(
                f"No seed learned with {', '.join(_name(s) for s in none)}; the best of "
                f"these, {_name(best)}, adds {_score_text(best)} of the pairs exactly "
                "(median)."
            )
        return "\n".join(lines)
    scored = [s for s in done if s.median_score is not None]
    if not scored:
        return "every run diverged"
    best = min(scored, key=lambda s: s.median_score)
    worst = max(scored, key=lambda s: s.median_score)
    return (
        f"Lowest median {best.score}: {_name(best)} ({_score_text(best)}); highest: "
        f"{_name(worst)} ({_score_text(worst)})."
    )


def title(run: str, options: dict[str, Any], seeds: int) -> str:
    """The figure's title: RUN and the options every run shares that decide its result
    most (``iters``, ``lr``, ``batch_size``; taken from ``options``, the resolved ones)."""
    fixed = [f"{options['iters']} iterations"] if "iters" in options else []
    fixed += [f"lr {options['lr']:g}"] if "lr" in options else []
    fixed += [f"batch {options['batch_size']}"] if "batch_size" in options else []
    return f"xpnn sweep {run}: {', '.join([*fixed, f'{seeds} seeds'])}"


def figure(summaries: Sequence[ConfigSummary], path: str | Path, title: str) -> None:
    """One row a configuration, labelled by its grid values. Where runs can be all exact
    (binary addition): each seed's fraction of operand pairs added exactly at the end
    (dots) with the median (bar), and beside it the iteration at which each seed first
    added every pair exactly ("never" counts the others). Otherwise each seed's test
    error with the median. Diverged runs are counted in the labels. Where the runs
    record test curves (the adding problem's ``--eval-every``): ``curve_figure``."""
    from xpnn.cli.plotting import new_figure, save

    if any(s.curves for s in summaries):
        curve_figure(summaries, path, title)
        return

    exact = all(s.exact is not None for s in summaries)
    panels = 2 if exact else 1
    fig = new_figure(4.5 + 2.5 * panels, 1.5 + 0.32 * len(summaries))
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)
    positions = list(range(len(summaries)))[::-1]
    labels = []
    for s in summaries:
        label = ", ".join(s.config.values())
        labels.append(label + (f" ({s.diverged} diverged)" if s.diverged else ""))
    ax = axes[0][0]
    score = next((s.score for s in summaries if s.score), "")
    for y, s in zip(positions, summaries, strict=True):
        if s.scores and score == EXACT:  # a fraction: a bar from 0 means something
            ax.barh(y, s.median_score, color="0.85")
        elif s.scores:  # an error on a log axis: the median as a tick, not a bar
            ax.plot([s.median_score], [y], "|", color="0.2", markersize=16)
        ax.plot(s.scores, [y] * len(s.scores), "o", color="tab:blue", alpha=0.7)
    if score == EXACT:
        ax.set(xlim=(0, 1.02), xlabel="pairs added exactly at the end\n(dots: seeds; bar: median)")
    else:
        ax.set(xscale="log", xlabel=f"{score or 'score'} (dots: seeds; tick: median)")
    if exact:
        ax = axes[0][1]
        iters = [i for s in summaries for i in s.first_exact]
        right = max(iters, default=1) * 1.35  # room for "never" beside the dots
        for y, s in zip(positions, summaries, strict=True):
            ax.plot(s.first_exact, [y] * len(s.first_exact), "o", color="tab:green", alpha=0.7)
            if s.exact < s.runs:
                text = f"never: {s.runs - s.exact}" if s.exact else "never"
                ax.text(right, y, text, va="center", ha="right", color="0.4", fontsize="small")
        ax.set(
            xlim=(0, right * 1.02), xlabel="iteration of the first reading with\nevery pair exact"
        )
    axes[0][0].set_yticks(positions, labels)
    axes[0][0].set_ylim(-0.6, len(summaries) - 0.4)
    axes[0][0].set_ylabel(", ".join(summaries[0].config) if summaries else "")
    fig.suptitle(title, fontsize="medium")
    save(fig, path)


def curve_figure(summaries: Sequence[ConfigSummary], path: str | Path, title: str) -> None:
    """Test MSE against iterations, the median over the seeds in one line a
    configuration and each seed in a faint line of its colour, on a log axis, with the
    level of always predicting the mean (the baseline) dashed: the IRNN paper's figure."""
    from xpnn.cli.plotting import new_figure, save

    fig = new_figure(7.5, 4.5)
    ax = fig.subplots()
    for k, s in enumerate(summaries):
        color = f"C{k}"
        for curve in s.curves:
            ax.plot(*zip(*curve, strict=True), color=color, alpha=0.25, linewidth=0.8)
        median = median_curve(s.curves)
        label = ", ".join(s.config.values()) + (f" ({s.diverged} diverged)" if s.diverged else "")
        if median:
            ax.plot(*zip(*median, strict=True), color=color, linewidth=2, label=label)
    baselines = [s.baseline for s in summaries if s.baseline is not None]
    ax.set_yscale("log")
    if baselines:
        level = statistics.median(baselines)
        ax.axhline(level, color="0.3", linestyle="--", linewidth=1, label=f"always 1: {level:.3g}")
        ax.set_ylim(top=30 * level)  # a start far above the baseline runs off the top
    ax.set(xlabel="iteration", ylabel="test MSE (median over seeds, bold)", title=title)
    ax.title.set_fontsize("medium")
    ax.legend(fontsize="small")
    save(fig, path)
