"""Command lines: ``pack compare`` (two run sets), ``pack runs`` (collect k runs), ``pack ab`` (A/B pairs).

Exit codes: 0 no regression (inconclusive rows included), 1 regression, 2 bad input or environment
mismatch, 3 environment problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.multiplicity import RULES
from bench.regression import CLOCKS, DEFAULT_CLOCK, METHODS, Comparison, Thresholds
from packager.arguments import batch_sizes, comma_list, thread_count
from packager.commands import verb_parser
from packager.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

DEFAULT_RUNS = 3


def add_threshold_arguments(p: argparse.ArgumentParser, method: str = "nights") -> None:
    d = Thresholds()
    p.add_argument("--threshold", type=float, default=d.median, help="median slowdown tolerated (0.05 = 5%%)")
    p.add_argument(
        "--p99-threshold", type=float, default=d.p99, help="tail slowdown tolerated (default 0.15)"
    )
    p.add_argument("--confidence", type=float, default=d.confidence, help="interval level (0.95)")
    p.add_argument("--method", choices=METHODS, default=method, help=f"interval method (default {method})")
    p.add_argument(
        "--clock",
        choices=CLOCKS,
        default=DEFAULT_CLOCK,
        help=f"default {DEFAULT_CLOCK}: " + "; ".join(f"{k}: {v}" for k, v in CLOCKS.items()),
    )
    p.add_argument(
        "--multiple",
        choices=RULES,
        default=d.multiple,
        help="rule deciding all regression tests of a comparison together: "
        + "; ".join(f"{k}: {v}" for k, v in RULES.items())
        + f" (default {d.multiple})",
    )
    p.add_argument(
        "--level",
        type=float,
        default=d.level,
        help="family-wise error rate (holm) or false discovery rate (bh) of one comparison (0.05)",
    )
    p.add_argument(
        "--resamples", type=int, default=d.resamples, help="bootstrap resamples (--method bootstrap)"
    )
    p.add_argument(
        "--run-cov",
        type=float,
        help="prior run-to-run CoV (from pack calibrate) used when neither side has two runs",
    )
    p.add_argument(
        "--night-cov",
        type=float,
        help="prior night-to-night CoV (from pack calibrate) used when the window has one night",
    )
    p.add_argument("--parity-growth", type=float, default=d.parity_growth, help="max_abs growth factor (10)")


def thresholds(args: argparse.Namespace) -> Thresholds:
    for name in ("threshold", "p99_threshold", "parity_growth", "resamples"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ("run_cov", "night_cov"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ("confidence", "level"):
        if not 0 < getattr(args, name) < 1:
            raise UsageError(f"--{name} must be between 0 and 1, got {getattr(args, name)}")
    if args.threshold >= 1:
        raise UsageError(f"--threshold must be below 1 (a fraction: 0.05 = 5 %), got {args.threshold}")
    return Thresholds(
        median=args.threshold,
        p99=args.p99_threshold,
        confidence=args.confidence,
        level=args.level,
        multiple=args.multiple,
        resamples=args.resamples,
        parity_growth=args.parity_growth,
        method=args.method,
        clock=args.clock,
        run_cov=args.run_cov,
        night_cov=args.night_cov,
    )


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--markdown", type=Path, help="write the Markdown summary to FILE")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--json-out", type=Path, help="write the comparison as JSON to FILE (pack history reads it)"
    )


def emit(result: Comparison, family: str, t: Thresholds, args: argparse.Namespace) -> int:
    """Markdown to stdout / ``--markdown`` / ``$GITHUB_STEP_SUMMARY`` (or JSON); the exit code."""
    from packager import atomic
    from packager.compare.render import render_markdown

    markdown = render_markdown(result, family, t)
    if args.markdown:
        atomic.write_text(args.markdown, markdown)
    if getattr(args, "json_out", None):
        atomic.write_json(args.json_out, {"family": family, **result.to_dict()})
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    print(json.dumps(result.to_dict(), indent=2) if args.json else markdown)
    return EXIT_CHECK_FAILED if result.regressed else EXIT_OK


# -- pack compare -----------------------------------------------------------------------------------------


COMPARE_DOC = """Regression detection between run sets: the run (a fresh process) is the unit.

A PATH is a report.json / run file, or a folder of run-*.json at any depth (else its report.json); each
PATH is one night. Several baselines form a window: pack compare NIGHT1 NIGHT2 NIGHT3 TONIGHT. Nights are
a level: each night is summarised by its runs' medians, and the interval of tonight's ratio includes the
night-to-night variance as well as the run-to-run one (--method nights, the default). All regression tests
of the comparison are decided together (--multiple holm, family-wise level --level 0.05). Verdicts:
regression (the interval lies above 1 + threshold at the adjusted level), unchanged (the whole interval
within +- threshold), improvement, otherwise inconclusive with the smallest slowdown this noise could
detect and the runs per night that would decide it. Inconclusive rows do not fail. Clock: CPU time per
call on CPU rows, wall time elsewhere (--clock auto). See docs/fixtures-and-nightly.md.

Exit codes: 0 no regression, 1 regression, 2 bad input or environment mismatch.
"""

RUNS_DOC = """Measure every package of pack output folders k times, each run a fresh process.

Runs are interleaved across packages (round r measures every package once, order rotated each round) and
written as INTO/<package>/run-NN.json with wall-clock and CPU-time samples per call. k: --runs, else the
recipe's [bench] runs (3).
"""

AB_DOC = """Did my change make it slower? Baseline and candidate packages measured alternately, here.

Every package in both pack output folders is measured in rounds of back-to-back pairs, AB in even rounds
and BA in odd ones, each run a fresh process, and compared pair by pair (--method pairs): a machine that
drifts between rounds moves both members of a pair.

Exit codes: 0 no regression, 1 regression, 2 bad input.
"""


def build_parser() -> argparse.ArgumentParser:
    p = verb_parser("compare", COMPARE_DOC)
    p.add_argument("paths", type=Path, nargs="*", metavar="PATH", help="BASELINE [BASELINE ...] CURRENT")
    add_threshold_arguments(p)
    p.add_argument("--allow-env-mismatch", action="store_true", help="compare across environments anyway")
    add_output_arguments(p)
    p.add_argument(
        "--env-key",
        action="store_true",
        help="print the environment key of PATH (or of this machine when none is given) and exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from packager.compare.runsets import compare_sets, load_nights, load_runs

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.env_key:
        return _print_env_key(args.paths)
    if len(args.paths) < 2:
        raise UsageError("pack compare needs a BASELINE and a CURRENT (report.json, run file or folder)")
    t = thresholds(args)
    window, current = load_nights(args.paths[:-1]), load_runs(args.paths[-1:])
    result = compare_sets(window, current, t, allow_env_mismatch=args.allow_env_mismatch)
    return emit(result, current[0].get("family", "?"), t, args)


def _print_env_key(paths: list[Path]) -> int:
    from bench.fingerprint import env_key
    from packager.compare.runsets import load_runs

    if paths:
        env = load_runs(paths[:1])[0].get("environment", {})
    else:
        from bench import environment

        env = environment.capture()
    print(env_key(env))
    return EXIT_OK


# -- pack runs --------------------------------------------------------------------------------------------


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs", type=int, help=f"runs per package (default: the recipe's [bench] runs, else {DEFAULT_RUNS})"
    )
    p.add_argument("--variants", type=comma_list, help="only these variants")
    p.add_argument("--backends", type=comma_list, help="only these backends")
    p.add_argument("--devices", type=comma_list, help="only these devices")
    p.add_argument("--batch-sizes", type=batch_sizes, help="batch sizes timed")
    p.add_argument("--min-iters", type=int, help="steady-state iterations per run (default: the recipe's)")
    p.add_argument("--min-time-s", type=float, help="steady-state seconds per run (default: the recipe's)")
    p.add_argument(
        "--threads", type=thread_count, help="intra-op threads per run (default: [bench] threads, else 1)"
    )
    p.add_argument(
        "--target-ci",
        type=float,
        help="adaptive stopping inside each run (default: off; k runs carry the precision, not one run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def settings(args: argparse.Namespace):
    from packager.compare.collect import Settings

    return Settings(
        batch_sizes=args.batch_sizes,
        min_iters=args.min_iters,
        min_time_s=args.min_time_s,
        threads=args.threads,
        target_ci=args.target_ci,
    )


def runs_per_package(args: argparse.Namespace, report: dict) -> int:
    """``--runs``, else the recipe's ``[bench] runs``, else 3."""
    if args.runs is not None:
        if args.runs < 1:
            raise UsageError(f"--runs must be >= 1, got {args.runs}")
        return args.runs
    from packager.compare.measure import recipe_of

    return getattr(recipe_of(report).bench, "runs", DEFAULT_RUNS)


def progress(args: argparse.Namespace):
    return None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))


def runs_parser() -> argparse.ArgumentParser:
    p = verb_parser("runs", RUNS_DOC)
    p.add_argument("pack_outs", type=Path, nargs="+", metavar="PACK_OUT", help="pack output folder(s)")
    p.add_argument("--into", type=Path, help="where run files go (default: PACK_OUT/runs)")
    p.add_argument(
        "--by-folder",
        action="store_true",
        help="file runs under INTO/<PACK_OUT folder name>/ (always so with several PACK_OUTs)",
    )
    add_run_arguments(p)
    return p


def runs_main(argv: Sequence[str] | None = None) -> int:
    from packager.compare.collect import collect, targets_of
    from packager.compare.measure import load_pack_report

    args = runs_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if len(args.pack_outs) > 1 and not args.into:
        raise UsageError("--into DIR is required with several PACK_OUT folders")
    targets, k = [], None
    for out in args.pack_outs:
        report = load_pack_report(out)
        k = k or runs_per_package(args, report)
        label = out.name if len(args.pack_outs) > 1 or args.by_folder else ""
        targets += targets_of(out, report, args.variants, args.backends, args.devices, label)
    if not targets:
        raise UsageError(
            f"no package left to measure in {', '.join(map(str, args.pack_outs))} after the filters"
        )
    into = args.into or args.pack_outs[0] / "runs"
    collect(targets, k, into, settings(args), progress(args))
    print(f"{k} runs of {len(targets)} package(s) in {into}")
    return EXIT_OK


# -- pack ab ----------------------------------------------------------------------------------------------


def ab_parser() -> argparse.ArgumentParser:
    p = verb_parser("ab", AB_DOC)
    p.add_argument("baseline", type=Path, help="baseline pack output folder")
    p.add_argument("candidate", type=Path, help="candidate pack output folder")
    p.add_argument("--into", type=Path, help="where run files go (default: CANDIDATE/ab-runs)")
    add_run_arguments(p)
    add_threshold_arguments(p, method="pairs")
    add_output_arguments(p)
    return p


def ab_main(argv: Sequence[str] | None = None) -> int:
    from packager.compare.collect import collect_pairs, targets_of
    from packager.compare.measure import load_pack_report
    from packager.compare.runsets import compare_sets, load_run

    args = ab_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t = thresholds(args)
    base_report, cand_report = load_pack_report(args.baseline), load_pack_report(args.candidate)
    if base_report["family"] != cand_report["family"]:
        raise UsageError(
            f"{args.baseline} is {base_report['family']}, {args.candidate} is {cand_report['family']}"
        )
    k = runs_per_package(args, cand_report)
    filters = (args.variants, args.backends, args.devices)
    a = targets_of(args.baseline, base_report, *filters, label="a")
    b = targets_of(args.candidate, cand_report, *filters, label="b")
    pairs = [
        (x, y) for x in a for y in b if (x.variant, x.backend, x.device) == (y.variant, y.backend, y.device)
    ]
    if not pairs:
        raise UsageError(f"no package in both {args.baseline} and {args.candidate} after the filters")
    into = args.into or args.candidate / "ab-runs"
    runs = collect_pairs(pairs, k, into, settings(args), progress(args))
    base = [load_run(p) for x, _ in pairs for p in runs[x]]
    cand = [load_run(p) for _, y in pairs for p in runs[y]]
    result = compare_sets(base, cand, t)
    return emit(result, cand_report["family"], t, args)
