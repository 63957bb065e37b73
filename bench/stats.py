"""Run-level latency statistics: the run (a fresh process) is the unit of replication.

Why: samples inside one process are not independent draws of what changes between processes (thread
placement, memory layout, clock frequency, a neighbour's load). Two back-to-back runs of an unchanged
package differed by 31 % at the median on a shared VM, while a test that pooled the samples of each run
reported p = 2.6e-26. Every interval here therefore treats one run's statistic (its median, its p99) as
one observation, so its width includes the between-run variance:

* :func:`independent_interval` — runs of the baseline vs runs of the current side: Student t interval of
  the difference of mean log per-run statistics, pooled variance (the ratio of geometric means);
* :func:`paired_interval` — A/B pairs measured back to back (``pack ab``): t interval of the mean log
  ratio within pairs, which cancels slow drifts of the machine shared by both members of a pair;
* :func:`hierarchical_bootstrap` — resamples runs first and samples within the chosen runs second.

With one run per side the between-run variance is unknown: the interval is ``None`` unless a prior
run-to-run CoV (from calibration, ``--run-cov``) is supplied. Ratios are current / baseline (> 1 slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POWER = 0.8  # "smallest detectable effect" is the one flagged with this probability


@dataclass(frozen=True)
class RatioInterval:
    """A current/baseline ratio of a per-run statistic with an interval that includes between-run noise.

    ``low``/``high`` are ``None`` when the noise is unknown (one run per side and no prior). ``noise`` is
    the run-to-run CoV the interval used (standard deviation of the log per-run statistic, pooled over
    both sides; for pairs, of one run, i.e. the pair sd over sqrt 2). ``detectable`` is the smallest
    slowdown (a fraction, 0.2 = 1.2x) that would be flagged against ``threshold`` with 80 % power.
    """

    ratio: float
    low: float | None
    high: float | None
    noise: float | None
    detectable: float | None
    df: int
    method: str


def run_statistic(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of one run's samples (numpy's linear interpolation, like the report)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("a run without latency samples")
    return float(np.percentile(arr, q))


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


def _t(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _interval(
    mean_log: float, se: float, df: int, confidence: float, threshold: float, noise: float, method: str
) -> RatioInterval:
    crit = _t((1 + confidence) / 2, df) if df > 0 else _z((1 + confidence) / 2)
    power = _t(POWER, df) if df > 0 else _z(POWER)
    return RatioInterval(
        ratio=math.exp(mean_log),
        low=math.exp(mean_log - crit * se),
        high=math.exp(mean_log + crit * se),
        noise=noise,
        detectable=math.expm1(math.log1p(threshold) + (crit + power) * se),
        df=df,
        method=method,
    )


def _unknown(mean_log: float, method: str) -> RatioInterval:
    return RatioInterval(math.exp(mean_log), None, None, None, None, 0, method)


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
        return _unknown(mean_log, "runs")
    se = sd * math.sqrt(1 / b.size + 1 / c.size)
    return _interval(mean_log, se, df, confidence, threshold, sd, "runs")


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
        return _unknown(mean_log, "pairs")
    se = sd_pair / math.sqrt(d.size)
    return _interval(mean_log, se, df, confidence, threshold, sd_pair / math.sqrt(2), "pairs")


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
    chosen runs' ``q``-th percentiles. Percentile interval of the current/baseline ratio.

    With few runs the bootstrap under-covers (it sees at most k distinct runs; its variance is (k-1)/k
    of the truth), which is why the t intervals are the default; calibration reports both.
    """
    rng = np.random.default_rng(seed)
    if len(baseline) < 2 and len(current) < 2:
        point = float(np.mean(np.log(per_run(current, q))) - np.mean(np.log(per_run(baseline, q))))
        return _unknown(point, "bootstrap")
    log_b, log_c = _bootstrap_side(baseline, q, resamples, rng), _bootstrap_side(current, q, resamples, rng)
    diffs = log_c - log_b
    point = float(np.mean(np.log(per_run(current, q))) - np.mean(np.log(per_run(baseline, q))))
    lo, hi = np.percentile(diffs, [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100])
    se = float(diffs.std(ddof=1))
    noise = [between_run_cov(side, q) for side in (baseline, current) if len(side) > 1]
    return RatioInterval(
        ratio=math.exp(point),
        low=math.exp(float(lo)),
        high=math.exp(float(hi)),
        noise=float(np.mean(noise)) if noise else None,
        detectable=math.expm1(math.log1p(threshold) + (_z((1 + confidence) / 2) + _z(POWER)) * se),
        df=len(baseline) + len(current) - 2,
        method="bootstrap",
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
