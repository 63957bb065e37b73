"""Verify one built package on one device as a consumer would: unzip, load through its model class, check
parity against the upstream reference (plus task-level checks), then measure cold start, latency and memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import PackageModel, Tensors
from backends.errors import BackendError, InputMismatchError
from backends.outputs import run_model
from backends.registry import load_kwargs_for, load_model_class
from bench import memory
from bench.latency import LatencyConfig, measure_model, validate_input_sets
from bench.parity import as_float64, compare_outputs, default_tolerance, noise_floor, noise_floor_tolerance
from bench.report import Report
from bench.tasks import task_checks
from bench.threads import current_threads
from packager import archive, atomic, failures
from packager.build import PackageBuild
from packager.errors import WeightpackError
from packager.goldens import save_arrays
from packager.inputs import build_input_sets
from packager.recipes import InputsRecipe, Recipe
from packager.ui import UI


@dataclass(frozen=True)
class ShapeCase:
    """One more shape of a variant's shape set: its inputs, and the reference's outputs on them."""

    label: str
    """``image 3x240x320`` (``InputsRecipe.shape_label``), what the report rows say."""
    spec: InputsRecipe
    """The variant's inputs at this shape (latency builds its batches from it)."""
    inputs: Tensors
    reference: Tensors


def verify_package(
    recipe: Recipe,
    build: PackageBuild,
    device: str,
    upstream_dir: Path,
    inputs: Tensors,
    ref_outputs: Tensors,
    measure_latency: bool,
    report: Report,
    ui: UI,
    floors: dict[str, dict] | None = None,
    shapes: tuple[ShapeCase, ...] = (),
) -> Tensors | None:
    """Unzip as a consumer does, load through the model class, check parity, then time it; returns the
    package's outputs on the parity inputs (``None`` when it could not be loaded).

    With a shape set, ``inputs``/``ref_outputs`` are at its first shape and ``shapes`` holds the others:
    the same loaded package is checked and timed at each, and every row says which (``input_shape``)."""
    first = recipe.inputs_for(build.variant).shape_label(0)
    where = f"{build.variant}/{build.backend} on {device}"
    # under the output folder, never /tmp: a killed run's leftover is swept by the next run
    with atomic.temp_dir(build.zip_result.zip_path.parent, "verify") as tmp:
        unzip_dir = tmp / "package"
        try:
            with ui.stage(f"load {where} from the zip"):
                model, cold = _cold_start(build, device, unzip_dir, inputs)
        except (WeightpackError, OSError, ValueError, RuntimeError) as exc:
            failures.record(report, "load", build.variant, build.backend, device, exc)
            ui.warn(f"{where}: {exc}")
            return None
        report.cold_start.append(
            {"variant": build.variant, "backend": build.backend, "device": device, **cold}
        )
        cases = [(first, None, inputs, ref_outputs)]
        cases += [(c.label, c.spec, c.inputs, c.reference) for c in shapes]
        outputs = None
        for label, _, case_inputs, case_ref in cases:
            try:
                out = _check_parity(
                    recipe, build, device, model, case_inputs, case_ref, report, ui, floors, label
                )
            except InputMismatchError as exc:  # the reference took these inputs: the package is wrong
                at = f" at input shape {label}" if label else ""
                message = f"variant '{build.variant}', backend {build.backend} on {device}{at}: {exc}"
                report.fail("parity", build.variant, build.backend, device, message, exit_code=1)
                ui.warn(message)
                return None
            outputs = out if outputs is None else outputs
        if measure_latency:
            with ui.stage(f"latency {where} (batch {', '.join(map(str, recipe.bench.batch_sizes))})"):
                baseline = cold.get("cuda_device_before_bytes")  # device memory before the load
                for label, spec, _, _ in cases:
                    _measure_latency(
                        recipe, build, device, model, upstream_dir, report, baseline, spec, label
                    )
        del model
    return outputs


def _cold_start(
    build: PackageBuild, device: str, unzip_dir: Path, inputs: Tensors
) -> tuple[PackageModel, dict]:
    """Unzip + from_pretrained + first inference, timed separately, with memory around the load."""
    rss_before = memory.rss_bytes()
    memory.reset_cuda_peak(device)
    device_before = memory.device_used_bytes(device)
    t0 = time.perf_counter()
    archive.safe_extract(build.zip_result.zip_path, unzip_dir, limits=build.limits)
    t1 = time.perf_counter()
    load_kwargs = load_kwargs_for(build.backend)
    model = load_model_class(build.model_class).from_pretrained(
        str(unzip_dir), device=device, **current_threads().model_kwargs(), **load_kwargs
    )
    t2 = time.perf_counter()
    run_model(model, inputs)
    if hasattr(model, "synchronize"):
        model.synchronize()
    t3 = time.perf_counter()
    cold = {
        "extract_s": t1 - t0,
        "load_s": t2 - t1,
        "first_inference_s": t3 - t2,
        "total_s": t3 - t0,
        "rss_delta_bytes": memory.rss_bytes() - rss_before,
        "peak_rss_bytes": memory.peak_rss_bytes(),
        **memory.cuda_peak(device),
        **memory.device_delta(device, device_before),  # what the load took on the device, any library
        **getattr(model, "load_facts", {}),  # how it was loaded (e.g. TensorRT host code allowed)
    }
    return model, cold


def report_dir(report: Report) -> Path:
    """The output folder a report is written to (kept in its meta by :func:`run_pack`)."""
    return Path(report.meta["out_dir"])


def tolerances_for(
    recipe: Recipe, backend: str, floors: dict[str, dict] | None = None
) -> Callable[[str, str], tuple[float, float]]:
    """Recipe per-output override, then recipe per-backend override, then the measured noise floor (when
    ``[parity] noise_floor = true``), then the dtype/backend defaults."""
    quantization = recipe.backends[backend].quantization

    def tolerance_for(output: str, dtype: str) -> tuple[float, float]:
        for key in (output, "*"):
            if key in recipe.parity.tolerances:
                t = recipe.parity.tolerances[key]
                return t.atol, t.rtol
        if backend in recipe.parity.backend_tolerances:
            t = recipe.parity.backend_tolerances[backend]
            return t.atol, t.rtol
        if floors and output in floors:
            return noise_floor_tolerance(floors[output], quantization)
        return default_tolerance(dtype, backend, quantization)

    return tolerance_for


def _check_parity(
    recipe: Recipe,
    build: PackageBuild,
    device: str,
    model: Any,
    inputs: Tensors,
    ref_outputs: Tensors,
    report: Report,
    ui: UI,
    floors: dict[str, dict] | None = None,
    label: str | None = None,
) -> Tensors:
    outputs = run_model(model, inputs)
    results = compare_outputs(ref_outputs, outputs, tolerances_for(recipe, build.backend, floors))
    checks = task_checks(recipe.task, ref_outputs, outputs, recipe.parity.min_cosine)
    where = f"{build.variant}/{build.backend}/{device}" + (f" at {label}" if label else "")
    for r in results:
        report.add_parity(build.variant, build.backend, device, r, label)
        if not r.passed:
            ui.warn(
                f"parity {where} {r.output}: {r.reason} (max_abs={r.max_abs}, atol={r.atol}, rtol={r.rtol})"
            )
    for c in checks:
        report.add_task_check(
            build.variant, build.backend, device, c.check, c.output, c.value, c.threshold, c.passed, label
        )
        if not c.passed:
            ui.warn(f"task check {where} {c.check}: {c.value:.6g} < {c.threshold}")
    if label != recipe.inputs_for(build.variant).shape_label(0):
        return outputs  # goldens hold the first shape's outputs, as the reference golden does
    stem = build.zip_result.zip_path.name.removesuffix(".zip")
    golden = save_arrays(
        report_dir(report) / "goldens" / f"{stem}-{device.replace(':', '')}.npz",
        {f"output/{k}": v for k, v in outputs.items()},
    )
    report.goldens.append(
        {
            "variant": build.variant,
            "backend": build.backend,
            "device": device,
            "path": golden.relative_to(report_dir(report)).as_posix(),
        }
    )
    return outputs


def _measure_latency(
    recipe: Recipe,
    build: PackageBuild,
    device: str,
    model: Any,
    upstream_dir: Path,
    report: Report,
    baseline_used_bytes: int | None = None,
    spec: InputsRecipe | None = None,
    label: str | None = None,
) -> None:
    """Time ``model`` at each batch size; ``spec``/``label``: one shape of a variant's shape set."""
    spec = spec or recipe.inputs_for(build.variant)
    b = recipe.bench
    config = LatencyConfig(
        b.warmup_iters, b.warmup_s, b.min_iters, b.min_time_s, b.max_time_s, target_ci=b.target_ci
    )
    for batch_size in b.batch_sizes:
        sets = build_input_sets(spec, upstream_dir, batch_size)
        distinct = validate_input_sets(sets)
        rss_before = memory.rss_bytes()
        memory.reset_cuda_peak(device)
        result = measure_model(model, device, sets, config, baseline_used_bytes=baseline_used_bytes)
        mem = {
            "rss_bytes": memory.rss_bytes(),
            "rss_delta_bytes": memory.rss_bytes() - rss_before,
            "peak_rss_bytes": memory.peak_rss_bytes(),
            **memory.cuda_peak(device),
        }
        report.add_latency(
            build.variant, build.backend, device, batch_size, result, mem, distinct, input_shape=label
        )


def measure_noise_floor(
    reference_class: str,
    upstream: Path,
    inputs: Tensors,
    ref_outputs: Tensors,
    report: Report,
    variant: str,
    ui: UI,
    reference_kwargs: dict | None = None,
) -> dict[str, dict] | None:
    """Run the reference class in float64 on the CPU and measure how far its fp32 outputs are from it."""
    try:
        model = as_float64(
            load_model_class(reference_class).from_pretrained(
                upstream, device="cpu", variant=variant, **(reference_kwargs or {})
            )
        )
        ref64 = run_model(model, inputs)
        del model
    except (TypeError, RuntimeError, ValueError, BackendError) as exc:
        report.noise_floor[variant] = {"error": f"{type(exc).__name__}: {exc}", "outputs": {}}
        ui.warn(f"noise floor unavailable for {variant} ({exc}); default tolerances apply")
        return None
    floors = noise_floor(ref_outputs, ref64)
    report.noise_floor[variant] = {"reference_class": reference_class, "outputs": floors}
    return floors


def compare_devices(
    recipe: Recipe, build: PackageBuild, per_device: dict[str, Tensors], report: Report, floors: dict | None
) -> None:
    """Compare the package's CPU outputs with its outputs on each other device (reported, not gated)."""
    if "cpu" not in per_device:
        return
    tolerance = tolerances_for(recipe, build.backend, floors)
    for device, outs in per_device.items():
        if device != "cpu":
            for r in compare_outputs(per_device["cpu"], outs, tolerance):
                report.add_cross_device(build.variant, build.backend, ("cpu", device), r)
