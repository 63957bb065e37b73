"""One latency row's estimate and verdict (the statistics behind :mod:`bench.regression`).

Verdicts, decided on the interval of the median ratio (current / baseline) and, where it can be
estimated, of the tail ratio:

* ``regression`` — the regression test of the median (or of the tail) is rejected by the comparison's
  multiplicity rule (:mod:`bench.multiplicity`): its one-sided interval at the adjusted level lies above
  ``1 + threshold``;
* ``improvement`` — the whole median interval lies below ``1 - threshold``;
* ``unchanged`` — equivalence: the whole median interval lies within ``1 +- threshold`` (and the tail's
  below ``1 + p99 threshold`` where compared). With the interval at 95 % a real slowdown beyond the
  threshold is called unchanged at most 2.5 % of the time, however noisy the row;
* ``inconclusive`` — anything else: the interval reaches past the threshold without clearing it. The row
  says the smallest slowdown this noise could detect (80 % power, at the level a lone regression must
  clear) and how many runs per night would decide it, or that none would (tonight's own night-to-night
  noise does not shrink with more runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from bench import nights, stats
from bench.stats import RatioInterval

MAX_RUNS = 100  # "runs that would decide it" is searched up to this many per night


def median_interval(
    window: Sequence[Sequence[Sequence[float]]],
    tonight: Sequence[Sequence[float]],
    t,
    pairs: tuple[list, list] | None = None,
) -> RatioInterval:
    """The median ratio's interval by ``t.method`` (``window``: nights of runs of samples)."""
    flat = [run for night in window for run in night]
    if t.method == "nights":
        return nights.night_interval(window, tonight, t.confidence, t.median, t.night_cov)
    if t.method == "bootstrap":
        return stats.hierarchical_bootstrap(flat, tonight, 50, t.confidence, t.median, t.resamples, t.seed)
    if t.method == "pairs":
        base, cur = pairs or ([], [])
        return stats.paired_interval(
            stats.per_run(base, 50), stats.per_run(cur, 50), t.confidence, t.median, t.run_cov
        )
    return stats.independent_interval(
        stats.per_run(flat, 50), stats.per_run(tonight, 50), t.confidence, t.median, t.run_cov
    )


def tail_interval(
    window: Sequence[Sequence[Sequence[float]]], tonight: Sequence[Sequence[float]], t
) -> tuple[RatioInterval | None, str]:
    """The tail ratio (``t.tail_quantile``) where enough samples estimate it: per night pooled for the
    nights method, per run otherwise; else ``None`` and why."""
    q = t.tail_quantile
    if t.method == "nights":
        return nights.tail_interval(window, tonight, q, t.confidence, t.p99)
    flat = [run for night in window for run in night]
    need = stats.min_samples_for_quantile(q, t.confidence)
    fewest = min(len(r) for r in [*flat, *tonight])
    if fewest < need:
        return None, f"p{q:g} not compared: {fewest} samples in a run, {need} needed to estimate it"
    if t.method == "pairs" and len(flat) != len(tonight):
        return None, f"p{q:g} not compared: unpaired runs"
    fn = stats.paired_interval if t.method == "pairs" else stats.independent_interval
    b, c = stats.per_run(flat, q), stats.per_run(tonight, q)
    return fn(b, c, t.confidence, t.p99, t.run_cov), ""


def detectable(iv: RatioInterval, threshold: float, alpha: float) -> float | None:
    """Smallest slowdown (0.2 = 1.2x) flagged with 80 % power at one-sided level ``alpha``."""
    if iv.se is None:
        return None
    crit = stats.t_quantile(1 - alpha, iv.df) + stats.t_quantile(stats.POWER, iv.df)
    return math.expm1(math.log1p(threshold) + crit * iv.se)


def runs_to_decide(iv: RatioInterval, threshold: float, alpha: float, confidence: float) -> int | None:
    """The fewest runs per night (per side, per pair) whose interval, as wide as the noise model predicts
    (:func:`bench.stats.se_at`) and with an 80 % power margin, decides the observed ratio; ``None`` when no
    number up to :data:`MAX_RUNS` would. An estimate: the night-to-night variance is itself estimated
    from the window, so a new window decides it less often than the margin suggests."""
    if iv.se is None or not iv.model:
        return None
    d, up, down = math.log(iv.ratio), math.log1p(threshold), math.log1p(-threshold)
    power = stats.t_quantile(stats.POWER, iv.df)
    one_sided = stats.t_quantile(1 - alpha, iv.df) + power
    two_sided = stats.t_quantile((1 + confidence) / 2, iv.df) + power
    for k in range(1, MAX_RUNS + 1):
        se = stats.se_at(iv.model, k)
        if se is None:
            return None
        if d > up and d - one_sided * se > up:
            return k
        if down < d < up and d + two_sided * se < up and d - two_sided * se > down:
            return k
        if d < down and d + two_sided * se < down:
            return k
    return None


def finish(iv: RatioInterval, threshold: float, alpha: float, confidence: float) -> RatioInterval:
    """``iv`` with ``detectable`` and ``runs_to_decide`` worked out at the lone-regression level (the
    latter only where the interval decides nothing: it is what an inconclusive row says)."""
    within = iv.low is not None and (
        iv.low > 1 + threshold
        or iv.high < 1 - threshold
        or (iv.low > 1 - threshold and iv.high < 1 + threshold)
    )
    return replace(
        iv,
        detectable=detectable(iv, threshold, alpha),
        runs_to_decide=None if within else runs_to_decide(iv, threshold, alpha, confidence),
    )


def verdict(median: RatioInterval, tail: RatioInterval | None, flagged: bool, t) -> tuple[str, str]:
    """``(verdict, note)`` of a row whose regression tests were already decided (``flagged``)."""
    if flagged:
        return "regression", ""
    if median.high is not None and median.high < 1 - t.median:
        return "improvement", ""
    within = median.low is not None and median.low > 1 - t.median and median.high < 1 + t.median
    tail_ok = tail is None or (tail.high is not None and tail.high < 1 + t.p99)
    if within and tail_ok:
        return "unchanged", ""
    return "inconclusive", inconclusive_note(median, t)


def slowdown(fraction: float | None) -> str:
    """A slowdown as a percentage, or ``> 10x`` where the noise leaves nothing detectable in practice."""
    if fraction is None:
        return "-"
    return f"{fraction:.0%}" if fraction < 9 else "> 10x"


def inconclusive_note(iv: RatioInterval, t) -> str:
    """What an inconclusive row could detect, and what would decide it."""
    unit = {"nights": "runs per night", "pairs": "A/B pairs"}.get(iv.method, "runs per side")
    if iv.se is None:
        if iv.method == "nights":
            return (
                "night-to-night noise unknown (one earlier night): a window needs >= 2 earlier nights, "
                "or give --night-cov from pack calibrate"
            )
        return (
            "run-to-run noise unknown (one run per side): collect k >= 2 runs "
            "(pack runs --runs K) or give --run-cov from calibration"
        )
    where = f"interval {iv.low:.3f}-{iv.high:.3f} reaches past {1 - t.median:.2f}-{1 + t.median:.2f}"
    text = f"{where}; smallest detectable slowdown at this noise {slowdown(iv.detectable)}"
    if iv.runs_to_decide is not None:
        return f"{text}; about {iv.runs_to_decide} {unit} would decide it (if this ratio holds)"
    if iv.method == "nights" and iv.model.get("night_var", 0) > 0:
        night = math.sqrt(iv.model["night_var"])
        return (
            f"{text}; no number of runs decides it: the night-to-night noise ({night:.1%}) alone is too "
            "large (re-measure on another night, or use pack ab for this question)"
        )
    return f"{text}; no number of {unit} up to {MAX_RUNS} decides it"
