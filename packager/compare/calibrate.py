"""``pack calibrate PACK_OUT --nights N``: the false-alarm and detection rates of the comparison the nightly
makes, measured on this machine from a pool of recorded nights.

Recording (``--nights N``, resumable: complete nights are kept): each "night" is one batch of fresh
processes, k runs (--runs, else the recipe's [bench] runs) of every package of PACK_OUT interleaved, plus
k runs of one package (--plant-package, default the first) with real extra work inside its forward at one
batch size (--plant, default compute:0.2 at the recipe's largest batch: :mod:`bench.planted`) and one
parity-only run of it with its outputs offset so that its error grows --drift (10) x 1.05 times. Nights
follow one another (--gap-s S apart), so each meets whatever load the machine has then. Layout:
POOL/night-NN/{clean,planted,drift}/<package>/run-RR.json and POOL/night-NN/night.json (written last: a
night without it was interrupted and is recorded again). One recorder at a time holds POOL/.record.lock.

Evaluation (also --from POOL, without measuring): the first --window-pool nights (default window + 1) are
the baseline pool, every later night is a candidate used once. Each candidate is compared, as the
nightly compares, with windows of --window (10, the nightly's) nights drawn from the baseline pool, on
the family's full matrix: a false alarm when any row is flagged (the nightly would exit 1) against any of
the windows, which is conservative about their overlap. Candidates share no night with each other or with the
windows, so given the baseline pool they are independent trials: the per-nightly false-alarm rate gets an
exact (Clopper-Pearson) 95 % interval over the candidates. Detection: the same candidate with the
planted package's runs in place of its clean ones, against one window (rotating), counted when the planted
row is flagged. Also: the ratio the plant really produced (planted vs clean runs of the same night), the
night-to-night and run-to-run CoV of every row with the slowdown each window and k could detect, and the
nightly's rolling form (each night against the nights before it) as a point estimate.

Exit 0 when the false-alarm goal holds (upper bound <= --max-false-alarm, 0.10) and the drift was seen in
every candidate, else 1. See docs/fixtures-and-nightly.md for the figures on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.regression import Thresholds
from packager.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

SIDES = ("clean", "planted", "drift")


def build_parser() -> argparse.ArgumentParser:
    from packager.commands import verb_parser
    from packager.compare.cli import add_output_arguments, add_run_arguments, add_threshold_arguments

    p = verb_parser("calibrate", __doc__)
    p.add_argument("pack_out", type=Path, nargs="?", help="pack output folder (unchanged packages)")
    p.add_argument("--nights", type=int, default=42, help="nights in the pool, recorded ones included (42)")
    p.add_argument("--window", type=int, default=10, help="nights in a window: the nightly's (10)")
    p.add_argument("--window-pool", type=int, help="baseline nights windows are drawn from (window + 1)")
    p.add_argument("--max-windows", type=int, default=6, help="windows per candidate at most (6)")
    p.add_argument("--plant", help="planted work (bench.planted), default compute:0.2@<largest batch>")
    p.add_argument("--plant-package", help="VARIANT/BACKEND/DEVICE that gets the planted changes (first)")
    p.add_argument("--drift", type=float, default=10.0, help="planted error growth factor (10; 0: none)")
    p.add_argument("--gap-s", type=float, default=0.0, help="seconds between recorded nights (0)")
    p.add_argument("--into", type=Path, help="the pool's folder (default: PACK_OUT/calibration)")
    p.add_argument("--from", dest="from_dir", type=Path, help="evaluate a recorded pool, measure nothing")
    p.add_argument("--max-false-alarm", type=float, default=0.10, help="goal: 95 %% upper bound (0.10)")
    add_run_arguments(p)
    add_threshold_arguments(p)
    add_output_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from packager.compare.cli import thresholds
    from packager.compare.pool import evaluate
    from packager.compare.pool_render import render

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t = thresholds(args)
    for name in ("window", "max_windows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.max_false_alarm < 1:
        raise UsageError(f"--max-false-alarm must be between 0 and 1, got {args.max_false_alarm}")
    started = time.perf_counter()
    if args.from_dir:
        root = args.from_dir
    elif args.pack_out:
        root = record(args)
    else:
        raise UsageError("pack calibrate needs PACK_OUT (or --from POOL of recorded nights)")
    nights = load_pool(root)
    pool = args.window_pool or args.window + 1
    result = evaluate(nights, t, args.window, pool, args.max_windows, args.max_false_alarm)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["pool_dir"] = str(root)
    markdown = render(result, t)
    if args.markdown:
        from packager import atomic

        atomic.write_text(args.markdown, markdown)
    if args.json_out:
        from packager import atomic

        atomic.write_json(args.json_out, result)
    print(json.dumps(result, indent=2, default=str) if args.json else markdown)
    return EXIT_OK if result["goals_met"] else EXIT_CHECK_FAILED


# -- recording --------------------------------------------------------------------------------------------


def record(args: argparse.Namespace) -> Path:
    """Record nights into the pool until it holds ``--nights`` complete ones."""
    from packager.compare.cli import runs_per_package
    from packager.compare.collect import targets_of
    from packager.compare.measure import load_pack_report, recipe_of

    if args.nights < 2:
        raise UsageError(f"--nights must be >= 2, got {args.nights}")
    report = load_pack_report(args.pack_out)
    k = runs_per_package(args, report)
    targets = targets_of(args.pack_out, report, args.variants, args.backends, args.devices)
    if args.plant_package:
        targets.sort(key=lambda x: f"{x.variant}/{x.backend}/{x.device}" != args.plant_package)
    if not targets or (
        args.plant_package
        and f"{targets[0].variant}/{targets[0].backend}/{targets[0].device}" != args.plant_package
    ):
        raise UsageError(
            f"--plant-package {args.plant_package!r} is not among the packages of {args.pack_out}"
        )
    sizes = args.batch_sizes or tuple(recipe_of(report).bench.batch_sizes)
    spec = args.plant or f"compute:0.2@{max(sizes)}"
    _check_plant(spec)
    first = targets[0]
    offset = args.drift * 1.05 * _error_floor(report, first, Thresholds().parity_floor) if args.drift else 0
    root = args.into or args.pack_out / "calibration"
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / ".record.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"{root}: another pack calibrate is recording into this pool") from None
    try:
        _record_nights(args, root, targets, first, spec, offset, k)
    finally:
        lock.release()
    return root


def _record_nights(args, root: Path, targets: list, first: Any, spec: str, offset: float, k: int) -> None:
    """Nights ``0..--nights-1`` that are not complete yet, one after another (the pool's lock held)."""
    from packager import atomic
    from packager.compare.cli import progress, settings
    from packager.compare.collect import execute, schedule

    say = progress(args)
    for n in range(args.nights):
        night = root / f"night-{n:02d}"
        if (night / "night.json").is_file():
            continue
        if night.exists():  # an interrupted night: not a result; recorded again from scratch
            shutil.rmtree(night)
        if n and args.gap_s:
            time.sleep(args.gap_s)
        info: dict[str, Any] = {"night": n, "k": k, "plant": spec, "planted_package": first.name,
                                "started": time.time(), "load_before": os.getloadavg()}  # fmt: skip
        plan = schedule([*(replace(x, label=f"{night.name}/clean") for x in targets),
                         replace(first, label=f"{night.name}/planted", plant=spec)], k)  # fmt: skip
        if offset:
            plan.append((0, replace(first, label=f"{night.name}/drift", drift=offset, latency=False)))
        execute(plan, root, settings(args), say)
        info.update(finished=time.time(), load_after=os.getloadavg())
        info["wall_s"] = round(info["finished"] - info["started"], 1)
        atomic.write_json(night / "night.json", info)
        if say:
            say(
                f"night {n}: {info['wall_s']} s, load average "
                f"{info['load_before'][0]:.1f} -> {info['load_after'][0]:.1f}"
            )


def _check_plant(spec: str) -> None:
    from bench.planted import Plant

    try:
        Plant.parse(spec)
    except ValueError as exc:
        raise UsageError(f"--plant: {exc}") from exc


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


# -- loading ----------------------------------------------------------------------------------------------


def load_pool(root: Path) -> list[dict[str, Any]]:
    """Complete nights of a pool, in order: ``{"name", "info", "clean": [...], "planted": [...], ...}``."""
    from packager.compare.runsets import load_run

    nights = []
    for folder in sorted(p for p in Path(root).glob("night-*") if (p / "night.json").is_file()):
        night: dict[str, Any] = {"name": folder.name, "info": json.loads((folder / "night.json").read_text())}
        for side in SIDES:
            runs = [load_run(f) for f in sorted((folder / side).glob("*/run-*.json"))]
            for run in runs:
                run["meta"]["night"] = folder.name
            night[side] = runs
        if night["clean"]:
            nights.append(night)
    if not nights:
        raise UsageError(f"{root}: no recorded nights (night-NN/night.json with clean/ runs) inside")
    return nights
