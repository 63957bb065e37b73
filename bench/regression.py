"""Regression verdicts between two sets of runs (each run a ``report.json``-shaped dict from one process).

Latency, per (variant, backend, device, batch): one observation per run (its median, its p99), compared
with :mod:`bench.stats` (runs vs runs, A/B pairs, or the hierarchical bootstrap), so the interval includes
run-to-run noise. Verdicts, in this order:

* ``regression`` — the whole interval of the median ratio lies above ``1 + threshold``, or the whole
  interval of the p99 ratio above ``1 + p99``. The interval already carries the between-run noise, so a
  slowdown that clears it is reported even on a noisy row;
* ``improvement`` — the whole median interval lies below ``1 - threshold``;
* ``inconclusive`` — the run-to-run noise (CoV of per-run medians) is unknown (one run per side) or
  larger than the threshold: the row cannot tell a threshold-sized change from noise, and says which
  slowdown it could detect;
* ``unchanged`` otherwise.

Parity keeps its deterministic rule: ``max_abs`` over ``parity_growth`` (10x) times the baseline's
(the baseline counting as at least ``parity_floor`` of atol) is a regression even inside tolerance, and
so is a check that passed in every baseline run and fails in a current one. A baseline row missing from
the current runs is a regression too. Nothing here raises on environment differences: they are returned,
and the caller decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench import stats
from bench.fingerprint import env_differences

METHODS = ("runs", "pairs", "bootstrap")
CLOCKS = {"wall": "samples_ms", "cpu": "cpu_samples_ms"}  # which per-sample series a row compares


@dataclass(frozen=True)
class Thresholds:
    median: float = 0.05  # a median slowdown whose whole interval lies above +5 % is a regression
    p99: float = 0.15  # the same for the p99, looser: a tail percentile of tens of samples is noisy
    confidence: float = 0.95  # two-sided level of the intervals
    resamples: int = 2000  # hierarchical bootstrap only
    parity_growth: float = 10.0  # max_abs x10 over the baseline's
    parity_floor: float = 0.01  # ... where the baseline error counts as at least 1 % of atol
    method: str = "runs"  # runs | pairs | bootstrap
    clock: str = "wall"  # wall (what a caller waits for) | cpu (process CPU time, robust to co-tenants)
    run_cov: float | None = None  # prior run-to-run CoV, used when neither side has two runs
    seed: int = 0


@dataclass
class LatencyComparison:
    key: str
    baseline_runs: int
    current_runs: int
    baseline_n: int  # samples over all runs
    current_n: int
    baseline_p50_ms: float  # geometric mean of the per-run medians
    current_p50_ms: float
    median: stats.RatioInterval
    p99: stats.RatioInterval
    within_cov: dict[str, float]  # side -> median per-run CoV of samples
    between_cov: dict[str, float | None]  # side -> CoV of per-run medians (None below two runs)
    verdict: str  # regression | improvement | inconclusive | unchanged
    reasons: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ParityComparison:
    key: str
    baseline_max_abs: float | None
    current_max_abs: float | None
    atol: float | None
    growth: float | None
    passed: bool | None
    verdict: str  # regression | ok
    reasons: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: list[str]
    current: list[str]
    method: str
    clock: str
    environment_match: bool
    environment_differences: list[str]
    latency: list[LatencyComparison]
    parity: list[ParityComparison]
    missing: list[str]

    @property
    def regressed(self) -> bool:
        return (
            any(r.verdict == "regression" for r in self.latency)
            or any(r.verdict == "regression" for r in self.parity)
            or bool(self.missing)
        )

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.latency)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "regressed": self.regressed}


def latency_key(row: dict) -> str:
    return f"{row['variant']}/{row['backend']}/{row['device']}/bs{row['batch_size']}"


def parity_key(row: dict) -> str:
    return f"{row['variant']}/{row['backend']}/{row['device']}/{row['output']}"


def latency_runs(runs: Sequence[dict], clock: str = "wall") -> dict[str, list[list[float]]]:
    """key -> one list of raw samples per run that measured it on ``clock`` (runs without are skipped)."""
    field_name = CLOCKS[clock]
    out: dict[str, list[list[float]]] = {}
    for run in runs:
        for row in run.get("latency", []):
            if row.get(field_name):
                out.setdefault(latency_key(row), []).append(list(row[field_name]))
    return out


def compare_runs(
    baseline: Sequence[dict],
    current: Sequence[dict],
    t: Thresholds | None = None,
    *,
    latency: bool = True,
    parity: bool = True,
) -> Comparison:
    """Compare the runs of a current set with those of a baseline set (``method="pairs"``: run ``i`` of
    each side were measured back to back). ``latency``/``parity`` restrict what is compared."""
    t = t or Thresholds()
    if t.method not in METHODS:
        raise ValueError(f"unknown method {t.method!r}; accepted: {', '.join(METHODS)}")
    if t.clock not in CLOCKS:
        raise ValueError(f"unknown clock {t.clock!r}; accepted: {', '.join(CLOCKS)}")
    if not baseline or not current:
        raise ValueError("both sides need at least one run")
    diffs: list[str] = []
    for run in baseline:
        for d in env_differences(run.get("environment", {}), current[0].get("environment", {})):
            if d not in diffs:
                diffs.append(d)
    missing: list[str] = []
    lat_rows: list[LatencyComparison] = []
    if latency:
        base_lat, cur_lat = latency_runs(baseline, t.clock), latency_runs(current, t.clock)
        if not base_lat and t.clock != "wall":
            raise ValueError(
                f"the baseline runs have no {CLOCKS[t.clock]} (recorded by pack runs / pack ab, not by pack)"
            )
        for key in sorted(base_lat):
            if key not in cur_lat:
                missing.append(f"latency {key}")
                continue
            if t.method == "pairs":
                base_pairs, cur_pairs = _pairs(baseline, current, key, t.clock)
                lat_rows.append(compare_latency(key, base_pairs, cur_pairs, t))
            else:
                lat_rows.append(compare_latency(key, base_lat[key], cur_lat[key], t))
    par_rows: list[ParityComparison] = []
    if parity:
        base_par, cur_par = _parity_rows(baseline), _parity_rows(current)
        for key in sorted(base_par):
            if key not in cur_par:
                missing.append(f"parity {key}")
                continue
            par_rows.append(compare_parity(key, base_par[key], cur_par[key], t))
    return Comparison(
        baseline=[_label(r) for r in baseline],
        current=[_label(r) for r in current],
        method=t.method,
        clock=t.clock,
        environment_match=not diffs,
        environment_differences=diffs,
        latency=lat_rows,
        parity=par_rows,
        missing=missing,
    )


def _label(run: dict) -> str:
    return str((run.get("meta") or {}).get("source") or run.get("created_at"))


def _pairs(baseline: Sequence[dict], current: Sequence[dict], key: str, clock: str) -> tuple[list, list]:
    """Samples of ``key`` from the baseline and current runs of the same round (``meta.run.round``, else
    the position in the list): the A/B pairs measured back to back."""
    b, c = _by_round(baseline, key, clock), _by_round(current, key, clock)
    rounds = sorted(set(b) & set(c))
    return [b[r] for r in rounds], [c[r] for r in rounds]


def _by_round(runs: Sequence[dict], key: str, clock: str) -> dict[int, list[float]]:
    out = {}
    for i, run in enumerate(runs):
        samples = latency_runs([run], clock).get(key)
        if samples:
            out[int(((run.get("meta") or {}).get("run") or {}).get("round", i))] = samples[0]
    return out


def compare_latency(
    key: str, baseline: Sequence[Sequence[float]], current: Sequence[Sequence[float]], t: Thresholds
) -> LatencyComparison:
    """One latency row: per-run medians and p99s of both sides -> intervals -> verdict."""
    med, p99 = _interval(baseline, current, 50, t.median, t), _interval(baseline, current, 99, t.p99, t)
    reasons = []
    if med.low is not None and med.low > 1 + t.median:
        reasons.append(
            f"median {med.ratio:.3f}x (CI {med.low:.3f}-{med.high:.3f}) > {1 + t.median:.2f}x "
            f"[{t.method}, {len(current)} vs {len(baseline)} runs]"
        )
    if p99.low is not None and p99.low > 1 + t.p99:
        reasons.append(f"p99 {p99.ratio:.3f}x (CI {p99.low:.3f}-{p99.high:.3f}) > {1 + t.p99:.2f}x")
    note = ""
    if reasons:
        verdict = "regression"
    elif med.high is not None and med.high < 1 - t.median:
        verdict = "improvement"
    elif med.noise is None:
        verdict = "inconclusive"
        note = (
            "run-to-run noise unknown (one run per side): collect k >= 2 runs "
            "(pack runs --runs K) or give --run-cov from calibration"
        )
    elif med.noise > t.median:
        verdict = "inconclusive"
        note = (
            f"noise {med.noise:.1%} > threshold {t.median:.0%}; smallest detectable slowdown "
            f"{med.detectable:.0%}"
        )
    else:
        verdict = "unchanged"
    return LatencyComparison(
        key=key,
        baseline_runs=len(baseline),
        current_runs=len(current),
        baseline_n=sum(len(r) for r in baseline),
        current_n=sum(len(r) for r in current),
        baseline_p50_ms=_geomean(stats.per_run(baseline, 50)),
        current_p50_ms=_geomean(stats.per_run(current, 50)),
        median=med,
        p99=p99,
        within_cov={"baseline": stats.within_run_cov(baseline), "current": stats.within_run_cov(current)},
        between_cov={"baseline": stats.between_run_cov(baseline), "current": stats.between_run_cov(current)},
        verdict=verdict,
        reasons=reasons,
        note=note,
    )


def _interval(baseline, current, q: float, threshold: float, t: Thresholds) -> stats.RatioInterval:
    if t.method == "bootstrap":
        return stats.hierarchical_bootstrap(
            baseline, current, q, t.confidence, threshold, t.resamples, t.seed
        )
    fn = stats.paired_interval if t.method == "pairs" else stats.independent_interval
    return fn(stats.per_run(baseline, q), stats.per_run(current, q), t.confidence, threshold, t.run_cov)


def _geomean(values: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _parity_rows(runs: Sequence[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        for row in run.get("parity", []):
            out.setdefault(parity_key(row), []).append(row)
    return out


def compare_parity(key: str, base: Sequence[dict], cur: Sequence[dict], t: Thresholds) -> ParityComparison:
    """The largest error of the current runs against the largest of the baseline runs (deterministic)."""
    reasons = []
    b, c = _worst(base), _worst(cur)
    atol = next((r.get("atol") for r in cur if r.get("atol") is not None), None)
    passed = all(bool(r.get("passed")) for r in cur)
    failed = next((r for r in cur if not r.get("passed")), None)
    if all(r.get("passed") for r in base) and failed is not None:
        reasons.append(f"failed now: {failed.get('reason')}")
    growth = None
    if b is not None and c is not None:
        floor = max(b, (atol or 0.0) * t.parity_floor, 1e-12)
        growth = c / floor
        if not math.isfinite(c) or growth > t.parity_growth:
            reasons.append(
                f"max_abs {b:.3g} -> {c:.3g} ({growth:.1f}x, limit {t.parity_growth:g}x)"
                + (" while still inside tolerance" if passed else "")
            )
    return ParityComparison(
        key=key,
        baseline_max_abs=b,
        current_max_abs=c,
        atol=atol,
        growth=growth,
        passed=passed,
        verdict="regression" if reasons else "ok",
        reasons=reasons,
    )


def _worst(rows: Sequence[dict]) -> float | None:
    values = [r["max_abs"] for r in rows if r.get("max_abs") is not None]
    if not values:
        return None
    return max(values, key=lambda v: v if math.isfinite(v) else math.inf)
