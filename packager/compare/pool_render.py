"""Markdown of a ``pack calibrate`` evaluation (:func:`packager.compare.pool.evaluate`)."""

from __future__ import annotations

from typing import Any

from bench.multiplicity import RULES
from bench.regression import Thresholds


def render(result: dict[str, Any], t: Thresholds) -> str:
    fa, det, ratio = result["false_alarms"], result["detection"], result["plant_ratio"]
    ok = {True: "met", False: "**MISSED**"}
    load = result.get("load") or {}
    lines = [
        f"## pack calibrate: {result['nights']} nights (k = {result['k']} runs of every package each), "
        f"windows of {result['window']} against 1",
        "",
        f"The nightly's comparison: method `{result['method']}`, clock `{result['clock']}`, threshold "
        f"{result['threshold']:.0%}, {RULES[result['multiple']]} at {result['level']:g} over the family's "
        f"full matrix. Baseline pool: {', '.join(result['baseline_pool'])}; {result['candidates']} candidate "
        f"nights, each used once, against {result['windows_per_candidate']} window(s) drawn from the pool. "
        f"Load average (1 min) while recording: {load.get('min', '-')}-{load.get('max', '-')} "
        f"(median {load.get('median', '-')}); recording took {result['record_wall_s']:.0f} s.",
        "",
        "| what | result | exact 95 % interval | goal |",
        "|---|---|---|---|",
        f"| false alarms per nightly (exit 1 on a night with no change, against any of its windows) "
        f"| {fa['flagged']}/{fa['trials']} = {fa['rate']:.1%} | {fa['lower']:.1%}-{fa['upper']:.1%} "
        f"| upper <= {result['max_false_alarm']:.0%}: {ok[result['goals']['false_alarm']]} |",
        f"| planted {result['plant']} in {result['planted_row']} detected (that row flagged) "
        f"| {det['detected']}/{det['trials']} = {det['rate']:.0%} | {det['lower']:.0%}-{det['upper']:.0%} "
        f"| reported |",
    ]
    if result["drift"]["trials"]:
        d = result["drift"]
        lines.append(
            f"| planted error drift detected | {d['detected']}/{d['trials']} (growth {_span(d['growth'])}x) "
            f"| - | all: {ok[result['goals'].get('drift', False)]} |"
        )
    lines += [
        "",
        f"- Every (candidate, window) draw: {fa['draws_flagged']} of {fa['draws']} flagged; row verdicts "
        f"over the A/A draws: {_counts(fa['row_verdicts'])}; rows ever flagged: "
        f"{_counts(fa['rows_flagged']) or 'none'}.",
        f"- Planted row's verdicts: {_counts(det['verdicts'])}; ratios seen {_span(det['ratios_seen'])}x; "
        f"another row flagged in {det['collateral_trials']} planted trial(s).",
    ]
    if ratio:
        lines.append(
            f"- The plant really produced {ratio['ratio']:.3f}x ({ratio['low']:.3f}-{ratio['high']:.3f}, "
            f"{ratio['clock']} clock, planted vs clean runs of the same night over {ratio['nights']} nights; "
            f"per night {_span(ratio['range'])}x; in-process estimate {_span(ratio['in_process'])}x)."
        )
    roll = result["rolling"]
    lines += [
        f"- The nightly's rolling form (each night against the {result['window']} before it, trials "
        f"sharing nights: a point estimate only): {roll['flagged']} of {roll['trials']} exit 1.",
        "",
        "Noise of every row over the clean runs of all nights, and the slowdown the nightly detects with "
        "80 % power (lone regression, this rule and level) for a window of W nights and k runs per night:",
        "",
        "| row | clock | nights / runs | median ms | night-to-night CoV | run-to-run CoV "
        "| W5 k3 | W5 k5 | W5 k10 | W10 k3 | W10 k5 | W10 k10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in result["noise"]:
        d = n["detectable"]
        lines.append(
            f"| {n['key']} | {n['clock']} | {n['nights']} / {n['runs']} | {n['median_ms']:.2f} "
            f"| {n['night_cov']:.1%} | {n['run_cov']:.1%} | "
            + " | ".join(f"{d[k]:.0%}" for k in ("W5k3", "W5k5", "W5k10", "W10k3", "W10k5", "W10k10"))
            + " |"
        )
    lines += ["", f"Pool: `{result['pool_dir']}`; wall time of this command {result['wall_s']} s."]
    return "\n".join(lines) + "\n"


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
