"""Evaluation of a pool of recorded nights (pure: no processes): the nightly's comparison, its false alarms
per nightly with exact bounds, its detection of a planted slowdown, and the noise of every row.

Why a baseline pool and separate candidates: windows drawn from a pool overlap, so outcomes of trials that
share nights are not independent and a binomial interval over all draws would be far too narrow. Here a
candidate night is used once and belongs to no window, so given the baseline pool the candidates are
independent trials; a candidate counts as a false alarm when any of its windows flags it, which covers the
windows' overlap conservatively. The price is honesty about what the bound is conditional on: the nights
of the baseline pool (reported with their load).
"""

from __future__ import annotations

import math
import random
from itertools import combinations
from typing import Any

import numpy as np

from bench import stats
from bench.multiplicity import lone_level
from bench.planted import Plant
from bench.regression import Thresholds, compare_nights, latency_key, row_clock, samples_of
from packager.errors import UsageError


def evaluate(
    nights: list[dict[str, Any]],
    t: Thresholds,
    window: int = 5,
    pool_size: int = 6,
    max_windows: int = 6,
    max_false_alarm: float = 0.10,
    seed: int = 0,
) -> dict[str, Any]:
    """False alarms, detection, plant ratio and noise of a pool (see the module docstring)."""
    if pool_size < window:
        raise UsageError(f"--window-pool {pool_size} is smaller than --window {window}")
    if len(nights) < pool_size + 1:
        raise UsageError(
            f"{len(nights)} recorded night(s): a baseline pool of {pool_size} and at least one candidate "
            f"night are needed (record more with --nights, or lower --window/--window-pool)"
        )
    base, candidates = nights[:pool_size], nights[pool_size:]
    windows = list(combinations(range(pool_size), window))
    if len(windows) > max_windows:
        windows = random.Random(seed).sample(windows, max_windows)
    info = base[0]["info"]
    planted_row = _planted_row(nights)
    out: dict[str, Any] = {
        "nights": len(nights),
        "baseline_pool": [n["name"] for n in base],
        "candidates": len(candidates),
        "window": window,
        "windows_per_candidate": len(windows),
        "k": info.get("k"),
        "plant": info.get("plant"),
        "planted_package": info.get("planted_package"),
        "planted_row": planted_row,
        "method": t.method,
        "clock": t.clock,
        "multiple": t.multiple,
        "level": t.level,
        "threshold": t.median,
        "load": _load(nights),
        "record_wall_s": round(sum(n["info"].get("wall_s", 0) for n in nights), 1),
    }
    out["false_alarms"] = _false_alarms(base, candidates, windows, t)
    out["detection"] = _detection(base, candidates, windows, t, planted_row, info.get("planted_package"))
    out["drift"] = _drift(base, candidates, windows, t)
    out["plant_ratio"] = _plant_ratio(nights, planted_row, info.get("planted_package"), t)
    out["noise"] = noise_table(nights, t)
    out["rolling"] = _rolling(nights, window, t)
    fa = out["false_alarms"]
    out["goals"] = {"false_alarm": fa["upper"] <= max_false_alarm}
    if out["drift"]["trials"]:
        out["goals"]["drift"] = out["drift"]["detected"] == out["drift"]["trials"]
    out["max_false_alarm"] = max_false_alarm
    out["goals_met"] = all(out["goals"].values())
    return out


def _package(run: dict) -> str:
    return str(((run.get("meta") or {}).get("run") or {}).get("package", ""))


def _planted_row(nights: list[dict[str, Any]]) -> str | None:
    """The latency key of the planted package at the planted batch size."""
    spec = Plant.parse(nights[0]["info"]["plant"]) if nights[0]["info"].get("plant") else None
    for night in nights:
        for run in night.get("planted", []):
            for row in run.get("latency", []):
                if spec is None or spec.batch_size in (None, row["batch_size"]):
                    return latency_key(row)
    return None


def _load(nights: list[dict[str, Any]]) -> dict[str, float]:
    loads = [v for n in nights for v in (n["info"].get("load_before"), n["info"].get("load_after")) if v]
    if not loads:
        return {}
    one = [x[0] for x in loads]
    return {"min": round(min(one), 2), "median": round(float(np.median(one)), 2), "max": round(max(one), 2)}


def _windows(base: list[dict], windows: list[tuple[int, ...]]) -> list[list[list[dict]]]:
    return [[base[j]["clean"] for j in w] for w in windows]


def _false_alarms(base, candidates, windows, t: Thresholds) -> dict[str, Any]:
    flagged_any, draws, draws_flagged = 0, 0, 0
    rows: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    for c in candidates:
        hit = False
        for w in _windows(base, windows):
            result = compare_nights(w, c["clean"], t)
            draws += 1
            draws_flagged += result.regressed
            hit = hit or result.regressed
            for r in result.latency:
                verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
                if r.verdict == "regression":
                    rows[r.key] = rows.get(r.key, 0) + 1
            for p in result.parity:
                if p.verdict == "regression":
                    rows[p.key] = rows.get(p.key, 0) + 1
            for m in result.missing:
                rows[m] = rows.get(m, 0) + 1
        flagged_any += hit
    low, high = stats.binomial_interval(flagged_any, len(candidates))
    return {
        "trials": len(candidates),
        "flagged": flagged_any,
        "rate": flagged_any / len(candidates),
        "lower": low,
        "upper": high,
        "draws": draws,
        "draws_flagged": draws_flagged,
        "rows_flagged": rows,
        "row_verdicts": verdicts,
    }


def _detection(base, candidates, windows, t: Thresholds, row: str | None, package: str | None) -> dict:
    trials = detected = collateral = 0
    verdicts: dict[str, int] = {}
    ratios = []
    all_windows = _windows(base, windows)
    for i, c in enumerate(candidates):
        if not c.get("planted") or row is None:
            continue
        runs = [r for r in c["clean"] if _package(r) != package] + c["planted"]
        result = compare_nights(all_windows[i % len(all_windows)], runs, t)
        found = next((r for r in result.latency if r.key == row), None)
        if found is None:
            continue
        trials += 1
        detected += found.verdict == "regression"
        verdicts[found.verdict] = verdicts.get(found.verdict, 0) + 1
        ratios.append(found.median.ratio)
        collateral += any(r.verdict == "regression" and r.key != row for r in result.latency)
    low, high = stats.binomial_interval(detected, trials)
    return {
        "trials": trials,
        "detected": detected,
        "rate": detected / trials if trials else 0.0,
        "lower": low,
        "upper": high,
        "verdicts": verdicts,
        "ratios_seen": [round(min(ratios), 3), round(max(ratios), 3)] if ratios else [],
        "collateral_trials": collateral,
    }


def _drift(base, candidates, windows, t: Thresholds) -> dict[str, Any]:
    trials = detected = 0
    growth = []
    w = _windows(base, windows)[0]
    for c in candidates:
        if not c.get("drift"):
            continue
        package = _package(c["drift"][0])
        window = [[r for r in night if _package(r) == package] for night in w]
        result = compare_nights(window, c["drift"], t, latency=False)
        trials += 1
        detected += any(p.verdict == "regression" for p in result.parity)
        growth.append(max((p.growth or 0.0) for p in result.parity) if result.parity else 0.0)
    return {
        "trials": trials,
        "detected": detected,
        "growth": [round(min(growth), 1), round(max(growth), 1)] if growth else [],
    }


def _row_logs(runs: list[dict], key: str, clock: str) -> tuple[np.ndarray, str]:
    rows = [r for run in runs for r in run.get("latency", []) if latency_key(r) == key]
    chosen = row_clock(clock, rows)
    medians = [np.median(s) for s in (samples_of(r, chosen) for r in rows) if s]
    return np.log(np.asarray(medians, dtype=np.float64)), chosen


def _plant_ratio(nights, row: str | None, package: str | None, t: Thresholds) -> dict[str, Any]:
    """The ratio the plant produced: planted vs clean runs of the planted row within each night."""
    if row is None:
        return {}
    per_night = []
    in_process = []
    for n in nights:
        if not n.get("planted"):
            continue
        clean = [r for r in n["clean"] if _package(r) == package]
        planted, clock = _row_logs(n["planted"], row, t.clock)
        base, _ = _row_logs(clean, row, t.clock)
        if planted.size and base.size:
            per_night.append(float(planted.mean() - base.mean()))
        for run in n["planted"]:
            record = ((run["meta"].get("run") or {}).get("planted")) or {}
            if record.get("ratio_in_process"):
                in_process.append(record["ratio_in_process"])
    if not per_night:
        return {}
    logs = np.asarray(per_night)
    se = float(logs.std(ddof=1) / math.sqrt(logs.size)) if logs.size > 1 else None
    iv = stats.make_interval(float(logs.mean()), se, logs.size - 1, t.confidence, 0.0, None, "nights")
    return {
        "nights": int(logs.size),
        "ratio": iv.ratio,
        "low": iv.low,
        "high": iv.high,
        "range": [round(float(np.exp(logs.min())), 3), round(float(np.exp(logs.max())), 3)],
        "in_process": [round(min(in_process), 3), round(max(in_process), 3)] if in_process else [],
        "clock": clock,
    }


def noise_table(nights: list[dict[str, Any]], t: Thresholds) -> list[dict[str, Any]]:
    """Per latency row over the clean runs of every night: the night-to-night and run-to-run CoV (one-way
    random effects on the log medians) and the slowdown the nightly would detect with 80 % power for
    windows of 5 and 10 nights and k = 3, 5, 10 runs per night, at the level a lone regression among all
    rows must clear."""
    keys = sorted({latency_key(r) for n in nights for run in n["clean"] for r in run.get("latency", [])})
    alpha = lone_level(t.level, len(keys))
    out = []
    for key in keys:
        per_night = []
        for n in nights:
            logs, clock = _row_logs(n["clean"], key, t.clock)
            if logs.size:
                per_night.append(logs)
        ks = [x.size for x in per_night]
        df_w = sum(k - 1 for k in ks)
        run_var = sum(float(((x - x.mean()) ** 2).sum()) for x in per_night) / df_w if df_w else 0.0
        means = np.array([x.mean() for x in per_night])
        between = float(means.var(ddof=1)) if means.size > 1 else 0.0
        night_var = max(0.0, between - run_var * float(np.mean([1 / k for k in ks])))
        detect = {}
        for w in (5, 10):
            for k in (3, 5, 10):
                se = math.sqrt((night_var + run_var / k) * (1 + 1 / w))
                crit = stats.t_quantile(1 - alpha, w - 1) + stats.t_quantile(stats.POWER, w - 1)
                detect[f"W{w}k{k}"] = math.expm1(math.log1p(t.median) + crit * se)
        out.append({
            "key": key,
            "clock": clock,
            "nights": len(per_night),
            "runs": int(sum(ks)),
            "median_ms": float(np.exp(np.median(np.concatenate(per_night)))),
            "night_cov": math.sqrt(night_var),
            "run_cov": math.sqrt(run_var),
            "detectable": detect,
        })  # fmt: skip
    return out


def _rolling(nights: list[dict[str, Any]], window: int, t: Thresholds) -> dict[str, Any]:
    """The nightly's own form over time: each night against the ``window`` nights before it (a point
    estimate only: consecutive trials share nights)."""
    flagged = trials = 0
    for i in range(window, len(nights)):
        result = compare_nights([n["clean"] for n in nights[i - window : i]], nights[i]["clean"], t)
        trials += 1
        flagged += result.regressed
    return {"trials": trials, "flagged": flagged}
