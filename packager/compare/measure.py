"""One run: a built package re-measured in this (fresh) process, written as a ``report.json``-shaped file.

``python -m packager.compare.measure PACK_OUT --variant V --backend B --device D --out RUN.json`` unzips
the package from a ``pack`` output folder, loads it through its model class, checks parity against the
reference outputs recorded there (same tolerances as ``pack``), and times it with the recipe's latency
settings, all through the package's :class:`~packager.package_check.PackageCheck` (the one check ``pack``,
the nightly and ``verify-remote`` use): the same load settings, tolerances, cases, latency rows and input
sets (:func:`packager.inputs.latency_sets`, from the recipe and the golden alone: no upstream files,
tokenizer or network needed). ``pack runs``, ``pack ab`` and ``pack calibrate`` start this module once per
run: the run, not the sample, is the unit that ``pack compare`` replicates. ``--plant SPEC`` puts extra work
inside the model's forward (:func:`bench.planted.plant`) and ``--plant-drift`` offsets its outputs
(calibration only; what was planted and the ratio it produced in this process are recorded in
``meta.run.planted``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packager.arguments import batch_sizes, thread_count
from packager.check import check_outputs
from packager.errors import EXIT_OK, UsageError
from packager.settings import RunSettings


def load_pack_report(pack_out: Path) -> dict:
    """``PACK_OUT/report.json``, or a :class:`UsageError` naming the file."""
    path = Path(pack_out) / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read a pack report ({exc}); pass a pack output folder") from exc
    if not isinstance(data, dict) or "packages" not in data:
        raise UsageError(f"{path}: not a weightpack report.json (no 'packages')")
    return data


def find_package(report: dict, pack_out: Path, variant: str, backend: str) -> dict:
    for pkg in report["packages"]:
        if (pkg["variant"], pkg["backend"]) == (variant, backend):
            return pkg
    have = ", ".join(f"{p['variant']}/{p['backend']}" for p in report["packages"]) or "none"
    raise UsageError(f"{pack_out}/report.json: no package {variant}/{backend} (packages: {have})")


def recipe_of(report: dict) -> Any:
    """The recipe the pack ran with (its recorded path), else the family's recipe found the usual way."""
    from packager.recipes import recipe_of_report

    return recipe_of_report(report)


def measure_run(
    pack_out: Path,
    variant: str,
    backend: str,
    settings: RunSettings,
    *,
    plant: str = "",
    drift: float = 0.0,
    meta: dict | None = None,
) -> dict:
    """Parity (and latency) of one package on ``settings``' device in this process, through the package's
    :class:`~packager.package_check.PackageCheck` (the check ``pack`` verified it with: same load settings,
    tolerances, cases, latency rows and input sets); a report-shaped dict."""
    from bench import environment
    from bench.cputime import CpuTimedModel
    from bench.planted import Plant, PlantedModel
    from bench.planted import plant as plant_work
    from bench.report import Report
    from packager.package_check import package_check

    pack_out = Path(pack_out)
    device = settings.devices[0]
    source = load_pack_report(pack_out)
    package = find_package(source, pack_out, variant, backend)
    recipe = recipe_of(source)
    golden = pack_out / source["references"][variant]["golden"]
    check = package_check(recipe, package, device, settings, golden, pack_out)
    planted: dict[str, Any] | None = {"drift": drift} if drift else None
    run_meta = {**(meta or {}), "pack_out": str(pack_out), "pid": os.getpid(), "planted": planted}
    report = Report.start(recipe, environment.capture(check.threads), {"run": run_meta})
    report.environment["threads"] = check.threads.to_dict()
    report.packages.append({k: package.get(k) for k in ("variant", "backend", "zip", "md5", "model_class")})
    # extracted under the pack output (an owned temporary, swept by a later run if this one is killed)
    with check.opened(pack_out) as opened:
        model = opened.model
        if plant:
            spec = Plant.parse(plant)
            rows = check.latency_plan()
            if not rows:
                raise UsageError("--plant needs latency rows to time the planted work: drop --no-latency")
            row = next((r for r in rows if r.batch_size == spec.batch_size), rows[0])
            probe = check.input_sets(row)[0]
            planted = {**(planted or {}), **plant_work(model, spec, probe, device)}
            run_meta["planted"] = planted
        if drift:
            model = PlantedModel(model, drift=drift)
        for case in check.checked_cases():
            result = check_outputs(model, check.request(case), opened)
            for r in result.parity:
                report.add_parity(variant, backend, device, r, case.label)
            for c in result.task_checks:
                report.add_task_check(
                    variant, backend, device, c.check, c.output, c.value, c.threshold, c.passed, case.label
                )
        timed = CpuTimedModel(model)
        for row in check.latency_plan():
            measured = check.measure(timed, row)
            report.add_latency(
                variant, backend, device, row.batch_size, measured.result, measured.memory,
                measured.input_sets, input_shape=row.label, inputs_digest=measured.inputs_digest,
            )  # fmt: skip
            cpu = timed.take(len(measured.result.samples_ms))
            report.latency[-1]["cpu_samples_ms"] = [round(s, 6) for s in cpu]
        del model, opened
    environment.finish(report.environment)
    return report.to_dict()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m packager.compare.measure", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("pack_out", type=Path, help="a pack output folder (report.json, zips, goldens/)")
    p.add_argument("--variant", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True, help="where to write the run (JSON)")
    p.add_argument("--no-latency", action="store_true", help="parity only")
    p.add_argument(
        "--batch-sizes", type=batch_sizes, help="comma-separated batch sizes (default: the recipe's)"
    )
    p.add_argument("--min-iters", type=int, help="steady-state iterations (default: the recipe's)")
    p.add_argument("--min-time-s", type=float, help="steady-state seconds (default: the recipe's)")
    p.add_argument("--plant", default="", help="calibration: extra work in the forward, e.g. compute:0.2@8")
    p.add_argument("--plant-drift", type=float, default=0.0, help="calibration: add this to every output")
    p.add_argument("--threads", type=thread_count, help="intra-op threads (default: [bench] threads, else 1)")
    p.add_argument("--target-ci", type=float, help="adaptive stopping per batch size (default: off)")
    p.add_argument("--meta", default="{}", help="JSON object recorded as meta.run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from packager import atomic

    args = build_parser().parse_args(argv)
    try:
        meta = json.loads(args.meta)
    except ValueError as exc:
        raise UsageError(f"--meta must be a JSON object: {exc}") from exc
    if args.plant:
        from bench.planted import Plant

        try:
            Plant.parse(args.plant)
        except ValueError as exc:
            raise UsageError(f"--plant: {exc}") from exc
    settings = RunSettings.of(
        devices=[args.device],
        threads=args.threads,
        measure_latency=not args.no_latency,
        batch_sizes=args.batch_sizes,
        min_iters=args.min_iters,
        min_time_s=args.min_time_s,
        target_ci=args.target_ci or 0.0,  # off unless asked: k runs carry the precision, not one run
    )
    run = measure_run(
        args.pack_out,
        args.variant,
        args.backend,
        settings,
        plant=args.plant,
        drift=args.plant_drift,
        meta=meta,
    )
    atomic.write_json(args.out, run)
    return EXIT_OK


if __name__ == "__main__":
    from packager.cli import _guard

    sys.exit(_guard(lambda: main(), json_errors=False))
