"""One run: a built package re-measured in this (fresh) process, written as a ``report.json``-shaped file.

``python -m packager.compare.measure PACK_OUT --variant V --backend B --device D --out RUN.json`` unzips
the package from a ``pack`` output folder, loads it through its model class, checks parity against the
reference outputs recorded there (same tolerances as ``pack``), and times it with the recipe's latency
settings. The latency inputs are the recorded parity inputs, rotated into ``[inputs] sets`` distinct
batches of each batch size, so no upstream files (tokenizer, network) are needed. ``pack runs``, ``pack
ab`` and ``pack calibrate`` start this module once per run: the run, not the sample, is the unit that
``pack compare`` replicates. ``--plant-slowdown``/``--plant-drift`` wrap the model in
:class:`bench.planted.PlantedModel` (calibration only; recorded in ``meta.run.planted``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from packager.arguments import batch_sizes
from packager.errors import EXIT_OK, UsageError


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
    from packager.recipes import default_recipe_dirs, load_recipe, resolve_family

    path = Path(report.get("recipe") or "")
    return load_recipe(path) if path.is_file() else resolve_family(report["family"], default_recipe_dirs())


def rotated_sets(inputs: dict[str, np.ndarray], batch_size: int, sets: int) -> list[dict[str, np.ndarray]]:
    """``sets`` batches of ``batch_size`` rows of the recorded inputs, each starting one row further."""
    n = len(next(iter(inputs.values())))
    out = []
    for s in range(max(1, sets)):
        rows = [(s * (batch_size + 1) + i) % n for i in range(batch_size)]
        out.append({k: np.ascontiguousarray(v[rows]) for k, v in inputs.items()})
    return out


def measure_run(
    pack_out: Path,
    variant: str,
    backend: str,
    device: str,
    *,
    latency: bool = True,
    batch_sizes: Sequence[int] | None = None,
    min_iters: int | None = None,
    min_time_s: float | None = None,
    slowdown: float = 0.0,
    drift: float = 0.0,
    threads: int | None = None,
    target_ci: float | None = None,
    meta: dict | None = None,
) -> dict:
    """Parity (and latency) of one package on one device in this process; a report-shaped dict."""
    from backends.outputs import run_model
    from backends.registry import load_kwargs_for
    from bench import environment
    from bench.cputime import CpuTimedModel
    from bench.latency import LatencyConfig, measure_model, validate_input_sets
    from bench.parity import compare_outputs
    from bench.planted import PlantedModel
    from bench.report import Report
    from bench.tasks import task_checks
    from bench.threads import apply_threads, resolve_threads
    from packager import archive, atomic
    from packager.consumer import load_model_class
    from packager.goldens import load_arrays
    from packager.verify import tolerances_for

    pack_out = Path(pack_out)
    source = load_pack_report(pack_out)
    package = find_package(source, pack_out, variant, backend)
    recipe = recipe_of(source)
    golden = pack_out / source["references"][variant]["golden"]
    inputs, reference = load_arrays(golden, "input"), load_arrays(golden, "output")
    floors = (source.get("noise_floor") or {}).get(variant, {}).get("outputs")
    planted = {"slowdown": slowdown, "drift": drift} if (slowdown or drift) else None
    run_meta = {
        **(meta or {}),
        "pack_out": str(pack_out),
        "pid": os.getpid(),
        "planted": planted,
    }
    settings = apply_threads(resolve_threads(threads, recipe.bench.threads))
    report = Report.start(recipe, environment.capture(), {"run": run_meta})
    report.environment["threads"] = settings.to_dict()
    report.packages.append({k: package.get(k) for k in ("variant", "backend", "zip", "md5", "model_class")})
    # extracted under the pack output (an owned temporary, swept by a later run if this one is killed)
    with atomic.temp_dir(pack_out, "run") as tmp:
        archive.safe_extract(pack_out / package["zip"], tmp / "package")
        model = load_model_class(package["model_class"]).from_pretrained(
            str(tmp / "package"), device=device, **settings.model_kwargs(), **load_kwargs_for(backend)
        )
        if planted:
            clock = "cpu" if device == "cpu" else "wall"
            model = PlantedModel(model, slowdown=slowdown, drift=drift, clock=clock)
        outputs = run_model(model, inputs)
        for r in compare_outputs(reference, outputs, tolerances_for(recipe, backend, floors)):
            report.add_parity(variant, backend, device, r)
        for c in task_checks(recipe.task, reference, outputs, recipe.parity.min_cosine):
            report.add_task_check(variant, backend, device, c.check, c.output, c.value, c.threshold, c.passed)
        if latency:
            b = recipe.bench
            config = LatencyConfig(
                b.warmup_iters,
                b.warmup_s,
                min_iters if min_iters is not None else b.min_iters,
                min_time_s if min_time_s is not None else b.min_time_s,
                b.max_time_s,
                target_ci=target_ci or None,
            )
            timed = CpuTimedModel(model)
            for bs in batch_sizes or b.batch_sizes:
                sets = rotated_sets(inputs, bs, recipe.inputs_for(variant).sets)
                distinct = validate_input_sets(sets)
                result = measure_model(timed, device, sets, config)
                report.add_latency(variant, backend, device, bs, result, None, distinct)
                cpu = timed.take(len(result.samples_ms))
                report.latency[-1]["cpu_samples_ms"] = [round(s, 6) for s in cpu]
        del model
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
    p.add_argument("--plant-slowdown", type=float, default=0.0, help="calibration: add this fraction of time")
    p.add_argument("--plant-drift", type=float, default=0.0, help="calibration: add this to every output")
    p.add_argument("--threads", type=int, help="intra-op threads (default: [bench] threads, else 1)")
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
    run = measure_run(
        args.pack_out,
        args.variant,
        args.backend,
        args.device,
        latency=not args.no_latency,
        batch_sizes=args.batch_sizes,
        min_iters=args.min_iters,
        min_time_s=args.min_time_s,
        slowdown=args.plant_slowdown,
        drift=args.plant_drift,
        threads=args.threads,
        target_ci=args.target_ci,
        meta=meta,
    )
    atomic.write_json(args.out, run)
    return EXIT_OK


if __name__ == "__main__":
    from packager.cli import _guard

    sys.exit(_guard(lambda: main(), json_errors=False))
