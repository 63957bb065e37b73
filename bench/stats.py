"""Run-level latency statistics: the run (a fresh process) is the unit of replication inside a night.

Why: samples inside one process are not independent draws of what changes between processes (thread
placement, memory layout, clock frequency, a neighbour's load). Two back-to-back runs of an unchanged
package differed by 31 % at the median on a shared VM, while a test that pooled the samples of each run
reported p = 2.6e-26. Every interval here therefore treats one run's statistic (its median) as one
observation, so its width includes the between-run variance. Nights add a level above runs: see
:mod:`bench.nights`, the default of ``pack compare``. The interval methods here serve the rest:

* :func:`independent_interval` — runs of the baseline vs runs of the current side, measured in the same
  session (interleaved): Student t interval of the difference of mean log per-run statistics;
* :func:`paired_interval` — A/B pairs measured back to back (``pack ab``): t interval of the mean log
  ratio within pairs, which cancels slow drifts of the machine shared by both members of a pair;
* :func:`hierarchical_bootstrap` — resamples runs first and samples within the chosen runs second.

Every method returns a :class:`RatioInterval`: the ratio of geometric means (current / baseline, > 1
slower), its interval, the standard error of the log ratio with its degrees of freedom, and a noise model
(:func:`se_at`) from which ``pack compare`` works out the slowdown this noise could detect and the number
of runs that would decide an inconclusive row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

POWER = 0.8  # "smallest detectable effect" is the one flagged with this probability


@dataclass(frozen=True)
class RatioInterval:
    """A current/baseline ratio of a per-run (or per-night) statistic with an interval that includes the
    noise of the level that replicates it.

    ``low``/``high`` (two-sided, at the comparison's confidence) are ``None`` when the noise is unknown.
    ``se`` is the standard error of the log ratio and ``df`` its degrees of freedom (0: a normal interval).
    ``p`` is the one-sided p-value of "no slowdown beyond the threshold" (small: a regression).
    ``noise`` is the CoV the interval was built from (per run, or per night). ``model`` says how ``se``
    shrinks with more runs (:func:`se_at`). ``detectable`` and ``runs_to_decide`` are filled in by
    :mod:`bench.regression` once the multiplicity rule fixed the level a lone regression must clear.
    """

    ratio: float
    low: float | None
    high: float | None
    noise: float | None
    detectable: float | None
    df: float
    method: str
    se: float | None = None
    p: float | None = None
    model: dict[str, Any] = field(default_factory=dict)
    runs_to_decide: int | None = None


def run_statistic(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of one run's samples (numpy's linear interpolation, like the report;
    computed in Python: for the tens to hundreds of samples of a run it is several times faster, and a
    calibration computes it hundreds of thousands of times)."""
    ordered = sorted(float(x) for x in samples)
    if not ordered:
        raise ValueError("a run without latency samples")
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def per_run(runs: Sequence[Sequence[float]], q: float) -> np.ndarray:
    """One statistic per run."""
    return np.array([run_statistic(r, q) for r in runs], dtype=np.float64)


def within_run_cov(runs: Sequence[Sequence[float]]) -> float:
    """Median over runs of each run's own CoV (std/mean of its samples): the noise a single run sees."""
    covs = []
    for r in runs:
        arr = np.asarray(r, dtype=np.float64)
        if arr.size > 1 and arr.mean() > 0:
            covs.append(float(arr.std(ddof=1) / arr.mean()))
    return float(np.median(covs)) if covs else 0.0


def between_run_cov(runs: Sequence[Sequence[float]], q: float = 50) -> float | None:
    """Run-to-run CoV: standard deviation of the log per-run statistic (``None`` below two runs)."""
    if len(runs) < 2:
        return None
    return float(np.std(np.log(per_run(runs, q)), ddof=1))


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """Student t quantile (normal when ``df`` is 0 or infinite)."""
    if not df or math.isinf(df):
        from scipy.stats import norm

        return float(norm.ppf(p))
    from scipy.stats import t

    return float(t.ppf(p, df))


def t_sf(x: float, df: float) -> float:
    """Upper tail probability of Student t (normal when ``df`` is 0 or infinite)."""
    if not df or math.isinf(df):
        from scipy.stats import norm

        return float(norm.sf(x))
    from scipy.stats import t

    return float(t.sf(x, df))


# kept for callers of the old private names
_t = t_quantile


def _z(p: float) -> float:
    return t_quantile(p, 0)


def make_interval(
    log_ratio: float,
    se: float | None,
    df: float,
    confidence: float,
    threshold: float,
    noise: float | None,
    method: str,
    model: dict[str, Any] | None = None,
) -> RatioInterval:
    """The :class:`RatioInterval` of a log ratio with standard error ``se`` (``None``: noise unknown)."""
    if se is None:
        return RatioInterval(math.exp(log_ratio), None, None, None, None, 0, method, model=model or {})
    crit = t_quantile((1 + confidence) / 2, df)
    p = t_sf((log_ratio - math.log1p(threshold)) / se, df) if se > 0 else float(log_ratio <= 0)
    return RatioInterval(
        ratio=math.exp(log_ratio),
        low=math.exp(log_ratio - crit * se),
        high=math.exp(log_ratio + crit * se),
        noise=noise,
        detectable=None,
        df=df,
        method=method,
        se=se,
        p=p if se > 0 else (0.0 if log_ratio > math.log1p(threshold) else 1.0),
        model=model or {},
    )


def se_at(model: dict[str, Any], k: int) -> float | None:
    """Standard error of the log ratio if every side (every night) had ``k`` runs, from a noise model:

    * ``nights``: ``night_var * (1 + 1/W) + run_var * (1/k + 1/(k W))`` — tonight's own night effect
      does not shrink with more runs, which is why some rows cannot be decided by runs at all;
    * ``runs``: ``run_var * 2 / k`` (k runs per side); ``pairs``: ``pair_var / k`` (k pairs).
    """
    kind = model.get("kind")
    if kind == "nights":
        w = model["nights"]
        return math.sqrt(model["night_var"] * (1 + 1 / w) + model["run_var"] * (1 / k + 1 / (k * w)))
    if kind == "runs":
        return math.sqrt(model["run_var"] * 2 / k)
    if kind == "pairs":
        return math.sqrt(model["pair_var"] / k)
    return None


def independent_interval(
    baseline: Sequence[float],
    current: Sequence[float],
    confidence: float = 0.95,
    threshold: float = 0.05,
    prior_cov: float | None = None,
) -> RatioInterval:
    """Ratio of geometric means of per-run statistics, with a pooled-variance t interval on the logs.

    ``prior_cov`` (a run-to-run CoV measured by calibration) stands in for the variance when neither
    side has two runs; the interval is then a normal one.
    """
    b, c = np.log(np.asarray(baseline, float)), np.log(np.asarray(current, float))
    if b.size == 0 or c.size == 0:
        raise ValueError("both sides need at least one run")
    mean_log = float(c.mean() - b.mean())
    df = b.size + c.size - 2
    if df > 0:
        ss = float(((b - b.mean()) ** 2).sum() + ((c - c.mean()) ** 2).sum())
        sd = math.sqrt(ss / df)
    elif prior_cov is not None:
        sd = prior_cov
    else:
        return make_interval(mean_log, None, 0, confidence, threshold, None, "runs")
    se = sd * math.sqrt(1 / b.size + 1 / c.size)
    model = {"kind": "runs", "run_var": sd**2}
    return make_interval(mean_log, se, df, confidence, threshold, sd, "runs", model)


def paired_interval(
    baseline: Sequence[float],
    current: Sequence[float],
    confidence: float = 0.95,
    threshold: float = 0.05,
    prior_cov: float | None = None,
) -> RatioInterval:
    """A/B pairs (baseline[i] and current[i] measured back to back): t interval of the mean log ratio."""
    b, c = np.log(np.asarray(baseline, float)), np.log(np.asarray(current, float))
    if b.size != c.size or b.size == 0:
        raise ValueError(f"paired runs need equal, non-zero counts (got {b.size} and {c.size})")
    d = c - b
    mean_log = float(d.mean())
    df = d.size - 1
    if df > 0:
        sd_pair = float(d.std(ddof=1))
    elif prior_cov is not None:
        sd_pair = prior_cov * math.sqrt(2)
    else:
        return make_interval(mean_log, None, 0, confidence, threshold, None, "pairs")
    se = sd_pair / math.sqrt(d.size)
    model = {"kind": "pairs", "pair_var": sd_pair**2}
    return make_interval(mean_log, se, df, confidence, threshold, sd_pair / math.sqrt(2), "pairs", model)


def hierarchical_bootstrap(
    baseline: Sequence[Sequence[float]],
    current: Sequence[Sequence[float]],
    q: float = 50,
    confidence: float = 0.95,
    threshold: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> RatioInterval:
    """Resample runs, then samples within each chosen run; the statistic is the geometric mean of the
    chosen runs' ``q``-th percentiles. Percentile interval of the current/baseline ratio; its p-value and
    decisions use the bootstrap standard error as a normal one.

    With few runs the bootstrap under-covers (it sees at most k distinct runs; its variance is (k-1)/k
    of the truth), which is why the t intervals are preferred.
    """
    rng = np.random.default_rng(seed)
    point = float(np.mean(np.log(per_run(current, q))) - np.mean(np.log(per_run(baseline, q))))
    if len(baseline) < 2 and len(current) < 2:
        return make_interval(point, None, 0, confidence, threshold, None, "bootstrap")
    log_b, log_c = _bootstrap_side(baseline, q, resamples, rng), _bootstrap_side(current, q, resamples, rng)
    diffs = log_c - log_b
    lo, hi = np.percentile(diffs, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    se = float(diffs.std(ddof=1))
    noise = [between_run_cov(side, q) for side in (baseline, current) if len(side) > 1]
    base = make_interval(
        point, se, 0, confidence, threshold, float(np.mean(noise)) if noise else None, "bootstrap"
    )
    k = (len(baseline) + len(current)) / 2
    model = {"kind": "runs", "run_var": se**2 * k / 2}
    return RatioInterval(
        ratio=base.ratio,
        low=math.exp(float(lo)),
        high=math.exp(float(hi)),
        noise=base.noise,
        detectable=None,
        df=0,
        method="bootstrap",
        se=se,
        p=base.p,
        model=model,
    )


def _bootstrap_side(runs: Sequence[Sequence[float]], q: float, resamples: int, rng) -> np.ndarray:
    """``resamples`` bootstrap draws of the mean log per-run statistic of one side."""
    k = len(runs)
    # Level 2 first, per run: the statistic of each run resampled within itself, resamples times.
    inner = np.empty((k, resamples))
    for i, r in enumerate(runs):
        arr = np.asarray(r, dtype=np.float64)
        idx = rng.integers(0, arr.size, size=(resamples, arr.size))
        inner[i] = np.log(np.percentile(arr[idx], q, axis=1))
    # Level 1: which runs each replicate uses (with replacement), each with its own within-run draw.
    chosen = rng.integers(0, k, size=(resamples, k))
    draws = rng.integers(0, resamples, size=(resamples, k))
    return inner[chosen, draws].mean(axis=1)


def min_samples_for_quantile(q: float, confidence: float = 0.95) -> int:
    """The fewest samples for which the largest one lies above the true ``q``-th percentile with
    probability ``confidence``: below that, a "p99" is the sample maximum and says nothing about the tail
    (p99 at 95 %: 299 samples)."""
    return math.ceil(math.log(1 - confidence) / math.log(q / 100))


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of a binomial proportion: never narrower than the data
    allow, however few the trials (0 of 36: upper bound 9.7 %)."""
    from scipy.stats import beta

    if trials <= 0:
        return 0.0, 1.0
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high
