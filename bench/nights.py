"""Nights as a level: how a night's latency compares with a window of earlier nights.

A nightly measures every row k times (k fresh processes) on each night, and the machine itself differs
from one night to the next (other jobs, thermal state, a kernel update, memory layout): the project's own
calibration saw a run-to-run CoV of 5.4-8.2 % across nights against 2.7-5.4 % within one session. Treating
every run of five earlier nights as an independent observation leaves that night-to-night variance out of
the interval, and the false-alarm rate grows with it (simulated: about 0 with no night effect, 1.6 % per
row with a night s.d. of 4 %, 3.9 % with 6 %). The model here is the usual two-level one, on the log scale:

    log m_ij = mu + n_i + e_ij,   n_i ~ N(0, night_var)  (night i),   e_ij ~ N(0, run_var)  (run j)

where ``m_ij`` is run j's median on night i. Each night is summarised by the mean of its runs' log
medians (a window of night-level values), and tonight's value is compared with the window's mean. The
variance of that difference is

    night_var * (1 + 1/W) + run_var * (1/k_tonight + mean(1/k_i)/W)

with ``night_var`` from the spread of the W window nights beyond what their runs explain and ``run_var``
pooled from the runs inside every night. The interval is a Student t one with W - 1 degrees of freedom
(the night-level spread has W - 1; the run-level one more, so W - 1 is the conservative choice). When all
nights have the same k this is exactly the prediction interval of a new night-level value from W earlier
ones. Tonight's own night effect is in every interval and no number of runs shrinks it: a row whose
night-to-night noise is larger than the threshold cannot be declared unchanged by measuring longer.

Tails: a night's p99 is the 99th percentile of its runs' samples pooled (a per-run p99 from 20-30
samples is the run's maximum), compared only when every night pooled at least
:func:`bench.stats.min_samples_for_quantile` samples; the window of night-level p99s gives the interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bench.stats import RatioInterval, make_interval, min_samples_for_quantile, per_run

Runs = Sequence[Sequence[float]]  # one night of one row: the samples of each run


def night_value(runs: Runs, q: float = 50) -> float:
    """A night's level: the mean of its runs' log ``q``-th percentiles (a geometric mean of medians)."""
    return float(np.mean(np.log(per_run(runs, q))))


def night_interval(
    window: Sequence[Runs],
    tonight: Runs,
    confidence: float = 0.95,
    threshold: float = 0.05,
    prior_night_cov: float | None = None,
) -> RatioInterval:
    """Tonight's median against a window of earlier nights (see the module docstring).

    With one window night the night-to-night variance is unknown: the interval is ``None`` unless a prior
    night-to-night CoV (from ``pack calibrate``) is given.
    """
    window = [n for n in window if len(n)]
    if not window or not tonight:
        raise ValueError("a comparison of nights needs at least one run tonight and one earlier night")
    logs = [np.log(per_run(night, 50)) for night in window]
    tonight_logs = np.log(per_run(tonight, 50))
    values = np.array([x.mean() for x in logs])
    d = float(tonight_logs.mean() - values.mean())
    w, k_c = len(window), len(tonight_logs)
    harmonic = float(np.mean([1 / len(x) for x in logs]))
    ss = sum(float(((x - x.mean()) ** 2).sum()) for x in [*logs, tonight_logs])
    df_w = sum(len(x) - 1 for x in [*logs, tonight_logs])
    run_var = ss / df_w if df_w > 0 else None
    if w >= 2:
        between = float(values.var(ddof=1))
        if run_var is None:  # one run per night everywhere: the night-level spread is all there is
            night_var, run_var_used = between, 0.0
        else:
            night_var, run_var_used = max(0.0, between - run_var * harmonic), run_var
        df: float = w - 1
    elif prior_night_cov is not None:
        night_var, run_var_used = prior_night_cov**2, run_var or 0.0
        df = df_w if run_var is not None else 0
    else:
        return make_interval(d, None, 0, confidence, threshold, None, "nights", _model(None, run_var, w))
    var_d = night_var * (1 + 1 / w) + run_var_used * (1 / k_c + harmonic / w)
    if var_d <= 0:  # identical nights: nothing to go on but the runs' resolution
        var_d = 1e-12
    noise = math.sqrt(night_var + run_var_used / k_c)
    model = _model(night_var, run_var_used, w)
    return make_interval(d, math.sqrt(var_d), df, confidence, threshold, noise, "nights", model)


def _model(night_var: float | None, run_var: float | None, w: int) -> dict:
    return {"kind": "nights", "night_var": night_var or 0.0, "run_var": run_var or 0.0, "nights": w}


def pooled_quantile(runs: Runs, q: float) -> tuple[float, int]:
    """The ``q``-th percentile of a night's samples pooled over its runs, and how many there were."""
    pooled = np.concatenate([np.asarray(r, dtype=np.float64) for r in runs])
    return float(np.percentile(pooled, q)), int(pooled.size)


def tail_interval(
    window: Sequence[Runs],
    tonight: Runs,
    q: float = 99,
    confidence: float = 0.95,
    threshold: float = 0.15,
) -> tuple[RatioInterval | None, str]:
    """Tonight's tail (``q``-th percentile of its pooled samples) against the window's, or ``None`` and
    why not: too few samples for that percentile, or fewer than two window nights."""
    need = min_samples_for_quantile(q, confidence)
    fewest = min(sum(len(r) for r in n) for n in [*window, tonight] if len(n))
    if fewest < need:
        return None, f"p{q:g} not compared: {fewest} samples in a night, {need} needed to estimate it"
    stats = [pooled_quantile(n, q) for n in [*window, tonight] if len(n)]
    if len(window) < 2:
        return None, f"p{q:g} not compared: the night-to-night spread needs two earlier nights"
    values = np.log([v for v, _ in stats[:-1]])
    d = float(math.log(stats[-1][0]) - values.mean())
    w = len(values)
    var = float(values.var(ddof=1))
    model = {"kind": "nights", "night_var": var, "run_var": 0.0, "nights": w}
    se = math.sqrt(max(var, 1e-12) * (1 + 1 / w))
    return make_interval(d, se, w - 1, confidence, threshold, math.sqrt(var), "nights", model), ""
