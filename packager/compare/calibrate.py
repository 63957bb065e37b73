"""``pack calibrate PACK_OUT``: measured false-alarm and detection rates of ``pack compare`` on this machine.

Per trial, every run a fresh process (``pack runs`` machinery), interleaved round by round:

* ``a`` and ``a2`` — k runs each of every selected package, unchanged: the A/A comparison ``a2`` vs ``a``
  gives the false alarms (rows flagged, trials that would exit 1);
* ``slow`` — k runs of one package wrapped in :class:`bench.planted.PlantedModel` adding ``--slowdown``
  of each call's time: ``slow`` vs ``a`` (and the A/B pairs ``a``/``slow`` of the same rounds) gives the
  detection rate;
* ``drift`` — one parity-only run of the same package with an offset added to its outputs so that its
  error grows ``--drift`` times (x1.05) over the recorded one: ``drift`` vs ``a`` on parity.

The same runs are re-evaluated with the other methods (pairs, hierarchical bootstrap) and with one run per
side, and the A runs give the run-to-run noise per row and the slowdown each k could detect: how a team
chooses k and the threshold. ``--from DIR`` re-evaluates the runs of an earlier calibration (other
thresholds, ``--use-runs`` fewer runs) without measuring again. Exit 0 when the goals are met (A/A: at most
``--max-false-rows`` flagged rows and no trial exiting 1; slowdown detected in at least ``--min-detect``
of the trials; drift in every trial), else 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import stats
from bench.regression import CLOCKS, Thresholds, compare_runs, latency_runs
from packager.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

SIDES = ("a", "a2", "slow", "drift")


def build_parser() -> argparse.ArgumentParser:
    from packager.commands import verb_parser
    from packager.compare.cli import add_output_arguments, add_run_arguments, add_threshold_arguments

    p = verb_parser("calibrate", __doc__)
    p.add_argument("pack_out", type=Path, nargs="?", help="pack output folder (unchanged packages)")
    p.add_argument("--trials", type=int, default=10, help="A/A pairs and planted trials (10)")
    p.add_argument("--slowdown", type=float, default=0.2, help="planted slowdown fraction (0.2 = 1.2x)")
    p.add_argument("--drift", type=float, default=10.0, help="planted error growth factor (10)")
    p.add_argument("--package", help="VARIANT/BACKEND/DEVICE that gets the planted changes (default: first)")
    p.add_argument("--into", type=Path, help="where the runs go (default: PACK_OUT/calibration)")
    p.add_argument(
        "--from", dest="from_dir", type=Path, help="re-evaluate the runs of an earlier calibration"
    )
    p.add_argument("--use-runs", type=int, help="evaluate with only the first N runs of each side")
    p.add_argument("--max-false-rows", type=int, default=1, help="A/A goal: flagged rows at most (1)")
    p.add_argument("--min-detect", type=float, default=0.9, help="slowdown goal: detection rate (0.9)")
    add_run_arguments(p)
    add_threshold_arguments(p)
    add_output_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from packager.compare.cli import thresholds

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t = thresholds(args)
    started = time.perf_counter()
    if args.from_dir:
        root = args.from_dir
    elif args.pack_out:
        root = _measure(args)
    else:
        raise UsageError("pack calibrate needs PACK_OUT (or --from DIR of an earlier calibration)")
    trials = load_trials(root, args.use_runs)
    result = evaluate(trials, t, args.max_false_rows, args.min_detect)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["runs_dir"] = str(root)
    markdown = render(result, t)
    if args.markdown:
        from packager import atomic

        atomic.write_text(args.markdown, markdown)
    print(json.dumps(result, indent=2, default=str) if args.json else markdown)
    return EXIT_OK if result["goals_met"] else EXIT_CHECK_FAILED


# -- measuring --------------------------------------------------------------------------------------------


def _measure(args: argparse.Namespace) -> Path:
    from packager.compare.cli import progress, runs_per_package, settings
    from packager.compare.collect import Target, execute, schedule, targets_of
    from packager.compare.measure import load_pack_report

    if args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    report = load_pack_report(args.pack_out)
    k = runs_per_package(args, report)
    targets = targets_of(args.pack_out, report, args.variants, args.backends, args.devices)
    if args.package:
        targets.sort(key=lambda x: f"{x.variant}/{x.backend}/{x.device}" != args.package)
    if not targets or (
        args.package and f"{targets[0].variant}/{targets[0].backend}/{targets[0].device}" != args.package
    ):
        raise UsageError(f"--package {args.package!r} is not among the packages of {args.pack_out}")
    planted = targets[0]
    offset = args.drift * 1.05 * _error_floor(report, planted, Thresholds().parity_floor)
    root = args.into or args.pack_out / "calibration"
    for trial in range(args.trials):
        label = f"t{trial:02d}"
        plan_targets = [
            *(replace(x, label=f"{label}/a") for x in targets),
            *(replace(x, label=f"{label}/a2") for x in targets),
            replace(planted, label=f"{label}/slow", slowdown=args.slowdown),
        ]
        drift = Target(planted.pack_out, planted.variant, planted.backend, planted.device,
                       f"{label}/drift", drift=offset, latency=False)  # fmt: skip
        execute([*schedule(plan_targets, k), (0, drift)], root, settings(args), progress(args))
    return root


def _error_floor(report: dict, target: Any, floor: float) -> float:
    """The smallest ``max(max_abs, floor * atol)`` over the target's recorded parity rows: an offset of
    ``drift`` times this makes the most accurate output's error grow ``drift`` times (others less)."""
    rows = [
        p for p in report.get("parity", [])
        if (p["variant"], p["backend"], p["device"]) == (target.variant, target.backend, target.device)
    ]  # fmt: skip
    values = [max(p.get("max_abs") or 0.0, (p.get("atol") or 0.0) * floor) for p in rows]
    if not values or min(values) <= 0:
        raise UsageError(f"{target.pack_out}/report.json: no parity error recorded for {target.name}")
    return min(values)


# -- evaluating -------------------------------------------------------------------------------------------


def load_trials(root: Path, use_runs: int | None = None) -> list[dict[str, list[dict]]]:
    """``root/tNN/<side>/<package>/run-RR.json`` -> per trial, side -> runs (rounds < ``use_runs``)."""
    from packager.compare.runsets import load_run

    trials = []
    for trial_dir in sorted(p for p in Path(root).glob("t[0-9]*") if p.is_dir()):
        sides: dict[str, list[dict]] = {}
        for side in SIDES:
            for f in sorted((trial_dir / side).glob("*/run-*.json")):
                run = load_run(f)
                if use_runs is None or run["meta"].get("run", {}).get("round", 0) < use_runs:
                    sides.setdefault(side, []).append(run)
        if sides.get("a") and sides.get("a2"):
            trials.append(sides)
    if not trials:
        raise UsageError(f"{root}: no calibration trials (tNN/a, tNN/a2 run folders) inside")
    return trials


def _package(run: dict) -> str:
    return run["meta"].get("run", {}).get("package", "")


def _only(runs: list[dict], package: str) -> list[dict]:
    return [r for r in runs if _package(r) == package]


def _first_round(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["meta"].get("run", {}).get("round", 0) == 0]


def _flagged(result: Any) -> int:
    return sum(r.verdict == "regression" for r in [*result.latency, *result.parity]) + len(result.missing)


def evaluate(
    trials: list[dict[str, list[dict]]], t: Thresholds, max_false_rows: int = 1, min_detect: float = 0.9
) -> dict[str, Any]:
    """False alarms, detection rates and noise of a set of calibration trials (pure: no processes)."""
    planted = _package(trials[0]["slow"][0]) if trials[0].get("slow") else None
    k = max(len(_only(trials[0]["a"], _package(trials[0]["a"][0]))), 1)
    out: dict[str, Any] = {"trials": len(trials), "k": k, "planted_package": planted, "methods": {}}
    clocks = [c for c in CLOCKS if latency_runs(trials[0]["a"], c)]
    for clock, method in [(c, m) for c in clocks for m in ("runs", "pairs", "bootstrap")]:
        tm = replace(t, method=method, clock=clock)
        aa = [compare_runs(tr["a"], tr["a2"], tm) for tr in trials]
        entry = {
            "aa_rows": sum(len(r.latency) + len(r.parity) for r in aa),
            "aa_flagged_rows": sum(_flagged(r) for r in aa),
            "aa_exit1": sum(r.regressed for r in aa),
            "aa_inconclusive_rows": sum(r.count("inconclusive") for r in aa),
        }
        if planted:
            slow = [compare_runs(_only(tr["a"], planted), tr["slow"], tm) for tr in trials if tr.get("slow")]
            entry["slow_detected"] = sum(any(r.verdict == "regression" for r in s.latency) for s in slow)
            entry["slow_trials"] = len(slow)
            entry["slow_ratios"] = [round(s.latency[0].median.ratio, 3) for s in slow if s.latency]
        out["methods"][f"{clock}/{method}"] = entry
    single = [compare_runs(_first_round(tr["a"]), _first_round(tr["a2"]), t) for tr in trials]
    out["single_run"] = {
        "aa_rows": sum(len(r.latency) for r in single),
        "aa_flagged_rows": sum(_flagged(r) for r in single),
        "aa_exit1": sum(r.regressed for r in single),
    }
    drifts = [compare_runs(_only(tr["a"], planted), tr["drift"], t, latency=False)
              for tr in trials if planted and tr.get("drift")]  # fmt: skip
    out["drift"] = {
        "trials": len(drifts),
        "detected": sum(any(p.verdict == "regression" for p in d.parity) for d in drifts),
        "growth": [round(max((p.growth or 0) for p in d.parity), 1) for d in drifts],
    }
    out["aa_growth_max"] = max(
        (p.growth or 0.0 for tr in trials for p in compare_runs(tr["a"], tr["a2"], t, latency=False).parity),
        default=0.0,
    )
    out["noise"] = {clock: noise_table(trials, replace(t, clock=clock)) for clock in clocks}
    out["gating"] = f"{t.clock}/{t.method}"
    runs_entry = out["methods"][out["gating"]]
    out["goals"] = {
        "aa": runs_entry["aa_flagged_rows"] <= max_false_rows and runs_entry["aa_exit1"] == 0,
        "slowdown": bool(planted)
        and runs_entry["slow_detected"] >= math.ceil(min_detect * runs_entry["slow_trials"]),
        "drift": out["drift"]["trials"] > 0 and out["drift"]["detected"] == out["drift"]["trials"],
    }
    out["goals_met"] = all(out["goals"].values())
    return out


def noise_table(trials: list[dict[str, list[dict]]], t: Thresholds) -> list[dict[str, Any]]:
    """Per latency row, over every unchanged run: within-run CoV, run-to-run CoV, and the slowdown a
    runs-vs-runs comparison detects with 80 % power at k = 1..10 runs per side."""
    pooled: dict[str, list[list[float]]] = {}
    within_trial: dict[str, list[float]] = {}
    for tr in trials:
        for side in ("a", "a2"):
            for key, runs in latency_runs(tr[side], t.clock).items():
                pooled.setdefault(key, []).extend(runs)
                if len(runs) > 1:
                    within_trial.setdefault(key, []).append(stats.between_run_cov(runs) or 0.0)
    rows = []
    for key, runs in sorted(pooled.items()):
        cov = stats.between_run_cov(runs) or 0.0
        detect = {}
        for k in (2, 3, 5, 8, 10):
            se = cov * math.sqrt(2 / k)
            df = 2 * k - 2
            detect[k] = math.expm1(
                math.log1p(t.median) + (stats._t((1 + t.confidence) / 2, df) + stats._t(stats.POWER, df)) * se
            )
        rows.append({
            "key": key,
            "runs": len(runs),
            "median_ms": float(np.median(stats.per_run(runs, 50))),
            "within_run_cov": stats.within_run_cov(runs),
            "run_to_run_cov": cov,
            "run_to_run_cov_in_trial": float(np.median(within_trial.get(key, [0.0]))),
            "detectable_by_k": detect,
        })  # fmt: skip
    return rows


# -- output -----------------------------------------------------------------------------------------------


def render(result: dict[str, Any], t: Thresholds) -> str:
    m = result["methods"]
    runs = m[result["gating"]]
    ok = {True: "met", False: "**MISSED**"}
    lines = [
        f"## pack calibrate: {result['trials']} trials, k = {result['k']} runs per side, "
        f"threshold {t.median:.0%} (p99 {t.p99:.0%}), {t.confidence:.0%} intervals, gating on "
        f"{result['gating']} (clock/method)",
        "",
        "| goal | result | |",
        "|---|---|---|",
        "| A/A: at most 1 flagged row, no exit 1 "
        f"| {runs['aa_flagged_rows']} of {runs['aa_rows']} rows flagged, "
        f"{runs['aa_exit1']} of {result['trials']} trials exit 1 | {ok[result['goals']['aa']]} |",
        f"| planted slowdown ({result['planted_package']}) detected in >= 9/10 | "
        f"{runs.get('slow_detected', 0)}/{runs.get('slow_trials', 0)} | {ok[result['goals']['slowdown']]} |",
        f"| planted error drift detected 10/10 | {result['drift']['detected']}/{result['drift']['trials']} "
        f"(growth {_span(result['drift']['growth'])}x; A/A growth at most {result['aa_growth_max']:.1f}x) "
        f"| {ok[result['goals']['drift']]} |",
        "",
        "Same runs, every clock and method:",
        "",
        "| clock/method | A/A rows flagged | A/A trials exit 1 | A/A inconclusive rows | slowdown detected "
        "| slowdown ratios seen |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in m.items():
        lines.append(
            f"| {name} | {e['aa_flagged_rows']}/{e['aa_rows']} | {e['aa_exit1']} "
            f"| {e['aa_inconclusive_rows']} "
            f"| {e.get('slow_detected', 0)}/{e.get('slow_trials', 0)} | {_span(e.get('slow_ratios', []))} |"
        )
    s = result["single_run"]
    lines.append(
        f"| {t.clock}, one run per side | {s['aa_flagged_rows']}/{s['aa_rows']} | {s['aa_exit1']} "
        f"| {s['aa_rows']} (noise unknown) | - | - |"
    )
    lines += [
        "",
        "Noise of the unchanged runs, and the slowdown a runs-vs-runs comparison detects with 80 % power "
        "at this threshold for k runs per side:",
        "",
        "| row | runs | median ms | within-run CoV | run-to-run CoV (all / in a trial) "
        "| k=2 | k=3 | k=5 | k=8 | k=10 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for clock, rows in result["noise"].items():
        for n in rows:
            d = n["detectable_by_k"]
            lines.append(
                f"| {n['key']} ({clock}) | {n['runs']} | {n['median_ms']:.2f} | {n['within_run_cov']:.1%} "
                f"| {n['run_to_run_cov']:.1%} / {n['run_to_run_cov_in_trial']:.1%} | "
                + " | ".join(f"{d[k]:.0%}" for k in sorted(d))
                + " |"
            )
    lines += ["", f"Runs: `{result['runs_dir']}`; wall time {result['wall_s']} s."]
    return "\n".join(lines) + "\n"


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"
