"""Regression verdicts of a night (its runs) against a window of earlier nights (each a list of runs, each
run a ``report.json``-shaped dict from one process).

Latency, per (variant, backend, device, batch): nights are a level (:mod:`bench.nights`, the default
method), so night-to-night variance is in every interval; ``runs``/``pairs``/``bootstrap`` treat the runs of
all baseline nights as one sample (for sets measured in one session, e.g. ``pack ab``). All regression
tests of one comparison (every row's median, and its tail where enough samples estimate it) are decided
together by a multiplicity rule (:mod:`bench.multiplicity`, Holm by default), so the false-alarm goal is
per nightly, not per row. Verdicts: :mod:`bench.verdicts` (regression, improvement, unchanged only when
the whole interval lies within the threshold, otherwise inconclusive with what would decide it).

Clock (``auto``, the default everywhere): the process CPU time per call (``cpu_samples_ms``, recorded by
``pack runs``) on CPU rows, where co-tenants of a shared machine inflate wall time but not the work; the
wall clock on accelerator rows, whose CPU time is launch overhead; the wall clock wherever CPU samples
were not recorded (a ``pack`` report). ``wall``, ``cpu`` and ``device`` (CUDA events) force one.

Parity keeps its deterministic rule (not a statistical test, so outside the multiplicity rule):
``max_abs`` over ``parity_growth`` (10x) times the baseline's (the baseline counting as at least
``parity_floor`` of atol) is a regression even inside tolerance, and so is a check that passed in every
baseline run and fails in a current one. A baseline row missing from the current runs is a regression too.
Nothing here raises on environment differences: they are returned, and the caller decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench import stats, verdicts
from bench.fingerprint import env_differences
from bench.multiplicity import RULES, adjust, lone_level
from bench.parity_growth import ParityComparison, compare_parity, parity_key, parity_rows

__all__ = ["ParityComparison", "compare_parity", "parity_key"]

METHODS = ("nights", "runs", "pairs", "bootstrap")
CLOCKS = {
    "auto": "CPU time per call on CPU rows, wall time elsewhere",
    "wall": "wall time per call (what a caller waits for)",
    "cpu": "process CPU time per call (recorded by pack runs / pack ab)",
    "device": "device time per call (CUDA events)",
}
DEFAULT_CLOCK = "auto"


@dataclass(frozen=True)
class Thresholds:
    median: float = 0.05  # +-5 %: a slowdown beyond it is a regression, a change within it "unchanged"
    p99: float = 0.15  # the same for the tail, looser
    confidence: float = 0.95  # two-sided level of the intervals shown (and of "unchanged")
    level: float = 0.05  # family-wise error (holm) or false discovery rate (bh) of one comparison
    multiple: str = "holm"  # holm | bh
    tail_quantile: float = 99
    resamples: int = 2000  # hierarchical bootstrap only
    parity_growth: float = 10.0  # max_abs x10 over the baseline's
    parity_floor: float = 0.01  # ... where the baseline error counts as at least 1 % of atol
    method: str = "nights"  # nights | runs | pairs | bootstrap
    clock: str = DEFAULT_CLOCK  # auto | wall | cpu | device
    run_cov: float | None = None  # prior run-to-run CoV, used when neither side has two runs
    night_cov: float | None = None  # prior night-to-night CoV, used with one earlier night
    seed: int = 0


@dataclass
class LatencyComparison:
    key: str
    clock: str  # the clock this row was compared on
    baseline_nights: int
    baseline_runs: int
    current_runs: int
    baseline_n: int  # samples over all runs
    current_n: int
    baseline_p50_ms: float  # geometric mean of the per-run medians (of the night levels, for nights)
    current_p50_ms: float
    median: stats.RatioInterval
    p99: stats.RatioInterval | None  # the tail ratio, where enough samples estimate it
    tail_note: str
    within_cov: dict[str, float]  # side -> median per-run CoV of samples
    between_cov: dict[str, float | None]  # side -> CoV of per-run medians (None below two runs)
    night_cov: float | None  # night-to-night CoV beyond the runs' (nights method)
    verdict: str  # regression | improvement | unchanged | inconclusive
    adjusted_p: dict[str, float] = field(default_factory=dict)  # test -> p after the multiplicity rule
    reasons: list[str] = field(default_factory=list)
    note: str = ""


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
    nights: int = 1
    multiple: str = "holm"
    level: float = 0.05
    tests: int = 0  # regression tests decided together

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


def samples_of(row: dict, clock: str) -> list[float] | None:
    """A latency row's samples on ``clock`` (``wall``, ``cpu`` or ``device``), or ``None``."""
    if clock == "device":
        return (row.get("device_time") or {}).get("samples_ms") or None
    return row.get("cpu_samples_ms" if clock == "cpu" else "samples_ms") or None


def row_clock(clock: str, rows: Sequence[dict]) -> str:
    """The clock a row is compared on: ``clock``, or for ``auto`` CPU time where every run of a CPU row
    recorded it, else wall time."""
    if clock != "auto":
        return clock
    on_cpu = all(r.get("device") == "cpu" for r in rows)
    return "cpu" if on_cpu and all(r.get("cpu_samples_ms") for r in rows) else "wall"


def latency_runs(runs: Sequence[dict], clock: str = "wall") -> dict[str, list[list[float]]]:
    """key -> one list of raw samples per run that measured it on ``clock`` (runs without are skipped)."""
    rows: dict[str, list[dict]] = {}
    for run in runs:
        for row in run.get("latency", []):
            rows.setdefault(latency_key(row), []).append(row)
    out: dict[str, list[list[float]]] = {}
    for key, found in rows.items():
        chosen = row_clock(clock, found)
        samples = [list(s) for s in (samples_of(r, chosen) for r in found) if s]
        if samples:
            out[key] = samples
    return out


def group_nights(runs: Sequence[dict]) -> list[list[dict]]:
    """Runs grouped by ``meta.night`` (set by :func:`packager.compare.runsets.load_nights`), in order;
    runs without one form a single night."""
    nights: dict[str, list[dict]] = {}
    for run in runs:
        nights.setdefault(str((run.get("meta") or {}).get("night", "")), []).append(run)
    return list(nights.values())


def compare_runs(
    baseline: Sequence[dict], current: Sequence[dict], t: Thresholds | None = None, **only: bool
) -> Comparison:
    """:func:`compare_nights` with the baseline's nights taken from ``meta.night`` (one night without)."""
    return compare_nights(group_nights(baseline), current, t, **only)


def compare_nights(
    window: Sequence[Sequence[dict]],
    current: Sequence[dict],
    t: Thresholds | None = None,
    *,
    latency: bool = True,
    parity: bool = True,
) -> Comparison:
    """Compare tonight's runs with a window of earlier nights (``method="pairs"``: run ``i`` of each side
    were measured back to back). ``latency``/``parity`` restrict what is compared."""
    t = t or Thresholds()
    _check(t)
    window = [list(n) for n in window if n]
    baseline = [run for night in window for run in night]
    if not baseline or not current:
        raise ValueError("both sides need at least one run")
    diffs: list[str] = []
    for run in baseline:
        for d in env_differences(run.get("environment", {}), current[0].get("environment", {})):
            if d not in diffs:
                diffs.append(d)
    missing: list[str] = []
    lat_rows = _latency_rows(window, current, t, missing) if latency else []
    tests = _decide(lat_rows, t)
    par_rows: list[ParityComparison] = []
    if parity:
        base_par, cur_par = parity_rows(baseline), parity_rows(current)
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
        nights=len(window),
        multiple=t.multiple,
        level=t.level,
        tests=tests,
    )


def _check(t: Thresholds) -> None:
    if t.method not in METHODS:
        raise ValueError(f"unknown method {t.method!r}; accepted: {', '.join(METHODS)}")
    if t.clock not in CLOCKS:
        raise ValueError(f"unknown clock {t.clock!r}; accepted: {', '.join(CLOCKS)}")
    if t.multiple not in RULES:
        raise ValueError(f"unknown multiplicity rule {t.multiple!r}; accepted: {', '.join(RULES)}")


def _latency_rows(
    window: list[list[dict]], current: Sequence[dict], t: Thresholds, missing: list[str]
) -> list[LatencyComparison]:
    baseline = [run for night in window for run in night]
    base_rows = {k for run in baseline for k in map(latency_key, run.get("latency", []))}
    if t.clock in ("cpu", "device") and base_rows and not latency_runs(baseline, t.clock):
        field_name = "cpu_samples_ms" if t.clock == "cpu" else "device_time.samples_ms"
        raise ValueError(
            f"the baseline runs have no {field_name} (recorded by pack runs / pack ab, not by pack)"
        )
    cur = _rows_by_key(current)
    by_night = [_rows_by_key(night) for night in window]
    out = []
    for key in sorted(base_rows):
        if key not in cur:
            missing.append(f"latency {key}")
            continue
        nights_rows = [rows.get(key, []) for rows in by_night]
        clock = row_clock(t.clock, [r for rows in nights_rows for r in rows] + cur[key])
        nights_samples = [[s for s in (samples_of(r, clock) for r in rows) if s] for rows in nights_rows]
        tonight = [s for s in (samples_of(r, clock) for r in cur[key]) if s]
        nights_samples = [n for n in nights_samples if n]
        if not nights_samples or not tonight:
            missing.append(f"latency {key} ({clock} clock)")
            continue
        pairs = _pairs(baseline, current, key, clock) if t.method == "pairs" else None
        out.append(_row(key, clock, nights_samples, tonight, t, pairs))
    return out


def _rows_by_key(runs: Sequence[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        for row in run.get("latency", []):
            out.setdefault(latency_key(row), []).append(row)
    return out


def _row(key: str, clock: str, window: list, tonight: list, t: Thresholds, pairs) -> LatencyComparison:
    flat = [run for night in window for run in night]
    median = verdicts.median_interval(window, tonight, t, pairs)
    tail, tail_note = verdicts.tail_interval(window, tonight, t)
    night_var = median.model.get("night_var") if median.method == "nights" and median.se is not None else None
    return LatencyComparison(
        key=key,
        clock=clock,
        baseline_nights=len(window),
        baseline_runs=len(flat),
        current_runs=len(tonight),
        baseline_n=sum(len(r) for r in flat),
        current_n=sum(len(r) for r in tonight),
        baseline_p50_ms=_geomean([_geomean(stats.per_run(n, 50)) for n in window]),
        current_p50_ms=_geomean(stats.per_run(tonight, 50)),
        median=median,
        p99=tail,
        tail_note=tail_note,
        within_cov={"baseline": stats.within_run_cov(flat), "current": stats.within_run_cov(tonight)},
        between_cov={"baseline": stats.between_run_cov(flat), "current": stats.between_run_cov(tonight)},
        night_cov=None if night_var is None else math.sqrt(night_var),
        verdict="inconclusive",
    )


def _decide(rows: list[LatencyComparison], t: Thresholds) -> int:
    """Every regression test of the comparison decided together; each row's verdict, reasons and note.
    Returns the number of tests."""
    tests = [(i, name, iv) for i, r in enumerate(rows) for name, iv in (("median", r.median), ("p99", r.p99))]
    tests = [(i, name, iv) for i, name, iv in tests if iv is not None and iv.p is not None]
    adjusted = adjust([iv.p for _, _, iv in tests], t.multiple) if tests else []
    alpha = lone_level(t.level, len(tests))
    for (i, name, _iv), p_adj in zip(tests, adjusted, strict=True):
        rows[i].adjusted_p[name] = p_adj
    for r in rows:
        r.median = verdicts.finish(r.median, t.median, alpha, t.confidence)
        limit = {"median": t.median, "p99": t.p99}
        for name, iv in (("median", r.median), ("p99", r.p99)):
            p_adj = r.adjusted_p.get(name)
            if iv is not None and p_adj is not None and p_adj <= t.level:
                r.reasons.append(
                    f"{name} {iv.ratio:.3f}x ({t.confidence:.0%} CI {iv.low:.3f}-{iv.high:.3f}) above "
                    f"{1 + limit[name]:.2f}x: adjusted p {p_adj:.2g} <= {t.level:g} "
                    f"[{t.multiple}, {len(tests)} tests; {t.method}, {r.current_runs} runs vs "
                    f"{r.baseline_runs} in {r.baseline_nights} night(s)]"
                )
        r.verdict, r.note = verdicts.verdict(r.median, r.p99, bool(r.reasons), t)
        if r.tail_note and r.verdict != "regression":
            r.note = f"{r.note}; {r.tail_note}" if r.note else r.tail_note
    return len(tests)


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
        row = next((r for r in run.get("latency", []) if latency_key(r) == key), None)
        samples = samples_of(row, clock) if row else None
        if samples:
            out[int(((run.get("meta") or {}).get("run") or {}).get("round", i))] = list(samples)
    return out


def _geomean(values) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(values, dtype=np.float64)))))
