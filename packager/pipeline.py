"""One ``pack`` run: fetch -> export -> zip -> verify (unzip, load, parity, latency) -> report.

Each step is a function from files to files. Export + zip are skipped when a zip and manifest built from
the same inputs exist (the manifest records an ``input_key`` hashed from the upstream files, the backend's
options and the tool versions), so re-running after an interruption finishes the job instead of redoing
it. Failures of one package are recorded and the run goes on with the others; the report's ``passed`` is
false and the CLI exits 1. Only bad input (recipe, flags, sources) aborts the whole run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ExportRequest, PackageModel, Tensors
from backends.device import resolve_device
from backends.errors import BackendError
from backends.outputs import flatten_outputs
from backends.registry import get_backend, load_model_class
from bench import environment, memory
from bench.latency import LatencyConfig, measure_model, validate_input_sets
from bench.parity import as_float64, compare_outputs, default_tolerance, noise_floor, noise_floor_tolerance
from bench.report import Report, render_markdown
from bench.tasks import task_checks
from packager import __version__, archive, atomic, manifest, sources
from packager.errors import UsageError, WeightpackError
from packager.inputs import build_input_sets, parity_inputs
from packager.recipes import Recipe
from packager.ui import UI


@dataclass
class PackOptions:
    """What to build and where; mirrors the CLI flags."""

    variants: list[str]
    backends: list[str]
    devices: list[str]
    out_dir: Path
    cache_dir: Path
    measure_latency: bool = True
    extra_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PackageBuild:
    """A zip on disk with its manifest, freshly built or reused."""

    variant: str
    backend: str
    zip_result: archive.ZipResult
    manifest_path: Path
    model_class: str
    package_manifest: dict[str, Any]
    reused: bool


def select(
    recipe: Recipe, variants: list[str] | None, backends: list[str] | None
) -> tuple[list[str], list[str]]:
    """Validate the requested variants/backends against the recipe (default: the recipe's default variant
    and every backend it enables)."""
    chosen_variants = variants or [recipe.default_variant]
    for v in chosen_variants:
        if v not in recipe.variants:
            raise UsageError(
                f"--variants: '{v}' is not a variant of {recipe.family} ({recipe.path}); "
                f"accepted: {', '.join(recipe.variants)}"
            )
    chosen_backends = backends or list(recipe.backends)
    for b in chosen_backends:
        if b not in recipe.backends:
            raise UsageError(
                f"--backends: '{b}' is not enabled in {recipe.path}; accepted: {', '.join(recipe.backends)}"
            )
    return chosen_variants, chosen_backends


def run_pack(recipe: Recipe, options: PackOptions, ui: UI | None = None) -> Report:
    """Build, verify and report every (variant, backend) package; returns the report (already written)."""
    ui = ui or UI()
    devices = [resolve_device(d) for d in options.devices]
    report = Report.start(
        recipe, environment.capture(), {**options.extra_meta, "out_dir": str(options.out_dir)}
    )
    options.out_dir.mkdir(parents=True, exist_ok=True)
    for variant in options.variants:
        _pack_variant(recipe, variant, options, devices, report, ui)
    environment.finish(report.environment)
    for warning in report.environment.get("warnings") or []:
        ui.warn(warning)
    write_report(report, options.out_dir)
    return report


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md`` and (with matplotlib) ``report.png`` beside them; returns the
    first two paths."""
    from bench.plot import plot_latency

    data = report.to_dict()
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    atomic.write_json(json_path, data)
    png = plot_latency(data, out_dir / "report.png")
    atomic.write_text(md_path, render_markdown(data, plot=png.name if png else None))
    return json_path, md_path


def _pack_variant(
    recipe: Recipe, variant: str, options: PackOptions, devices: list[str], report: Report, ui: UI
) -> None:
    spec = recipe.variants[variant]
    with ui.stage(f"fetch {recipe.family}/{variant} from {spec.source}"):
        fetched = sources.fetch(
            spec.source,
            cache_dir=options.cache_dir,
            allow_patterns=spec.allow_patterns,
            progress=ui.download_progress,
        )
    report.provenance[variant] = fetched.provenance
    fetched = upstream_view(fetched, options.out_dir)
    reference_class = recipe.parity.reference_class or _default_reference(recipe)
    with ui.stage(f"reference outputs of {recipe.family}/{variant} ({reference_class}, cpu fp32)"):
        inputs = parity_inputs(recipe.inputs_for(variant), fetched.path)
        reference = load_model_class(reference_class).from_pretrained(
            fetched.path, device="cpu", variant=variant
        )
        ref_outputs = run_model(reference, inputs)
        del reference
    floors = None
    if recipe.parity.noise_floor:
        with ui.stage(f"noise floor of {recipe.family}/{variant} (reference fp32 vs fp64, cpu)"):
            floors = _noise_floor(reference_class, fetched.path, inputs, ref_outputs, report, variant, ui)
    golden = save_arrays(
        options.out_dir / "goldens" / f"{recipe.architecture}-{variant}-reference.npz",
        {
            **{f"input/{k}": v for k, v in inputs.items()},
            **{f"output/{k}": v for k, v in ref_outputs.items()},
        },
    )
    report.references[variant] = {
        "model_class": reference_class,
        "outputs": {k: list(v.shape) for k, v in ref_outputs.items()},
        "golden": golden.relative_to(options.out_dir).as_posix(),
    }
    for backend in options.backends:
        try:
            build = _build_package(recipe, variant, backend, fetched, inputs, reference_class, options, ui)
        except (BackendError, WeightpackError) as exc:
            if isinstance(exc, UsageError):
                raise
            report.fail("export", variant, backend, None, str(exc))
            ui.warn(f"{variant}/{backend}: {exc}")
            continue
        report.add_package(build)
        per_device = {}
        for device in devices:
            outs = _verify(
                recipe, build, device, fetched.path, inputs, ref_outputs, options, report, ui, floors
            )
            if outs is not None:
                per_device[device] = outs
        _cross_device(recipe, build, per_device, report, floors)


def upstream_view(fetched: sources.FetchedSource, out_dir: Path) -> sources.FetchedSource:
    """The fetched files alone, even when their folder holds more (a shared HF snapshot fetched with
    wider allow-patterns before, or the folder around a single local file).

    Exporters copy folders, so they must see exactly the source's files: when the folder has others, a
    view of symlinks to the listed files is made under ``out_dir/.upstream/`` and used instead.
    """
    listed = set(fetched.files)
    present = {p.relative_to(fetched.path).as_posix() for p in fetched.path.rglob("*") if p.is_file()}
    if present == listed:
        return fetched
    key = hashlib.sha256(json.dumps(sorted(listed)).encode() + str(fetched.path).encode()).hexdigest()[:16]
    view = out_dir / ".upstream" / key
    for rel in sorted(listed):
        link = view / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to((fetched.path / rel).resolve())
    return sources.FetchedSource(path=view, provenance=fetched.provenance)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write named arrays as ``.npz`` atomically: sample inputs (``input/NAME``) and outputs
    (``output/NAME``), so later runs (fixtures, nightly, verify-remote) compare against this run."""
    with atomic.atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_arrays(path: Path, prefix: str) -> Tensors:
    """The arrays saved by :func:`save_arrays` under ``prefix`` (``input`` or ``output``), prefix removed."""
    with np.load(path) as data:
        return {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(prefix + "/")}


def _noise_floor(
    reference_class: str,
    upstream: Path,
    inputs: Tensors,
    ref_outputs: Tensors,
    report: Report,
    variant: str,
    ui: UI,
) -> dict[str, dict] | None:
    """Run the reference class in float64 on the CPU and measure how far its fp32 outputs are from it."""
    try:
        model = as_float64(
            load_model_class(reference_class).from_pretrained(upstream, device="cpu", variant=variant)
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


def _cross_device(
    recipe: Recipe, build: PackageBuild, per_device: dict[str, Tensors], report: Report, floors: dict | None
) -> None:
    """Compare the package's CPU outputs with its outputs on each other device (reported, not gated)."""
    if "cpu" not in per_device:
        return
    tolerance = _tolerance_fn(recipe, build.backend, floors)
    for device, outs in per_device.items():
        if device != "cpu":
            for r in compare_outputs(per_device["cpu"], outs, tolerance):
                report.add_cross_device(build.variant, build.backend, ("cpu", device), r)


def _default_reference(recipe: Recipe) -> str:
    """The upstream reference: the hf model class for the task unless the recipe names one."""
    return get_backend("hf").default_model_class(recipe.task) or "backends.hf.model:HFModel"


def run_model(model: Any, inputs: Tensors) -> Tensors:
    """Call a model class (``infer`` when it has one, else ``model(**inputs)``) and flatten the result."""
    if hasattr(model, "infer"):
        return flatten_outputs(model.infer(inputs))
    return flatten_outputs(model(**inputs))


def input_key(
    fetched: sources.FetchedSource, recipe: Recipe, backend: str, variant: str | None = None
) -> str:
    """Content hash of everything a package is built from: same key, same package."""
    payload = {
        "files": fetched.provenance.get("files"),
        "backend": backend,
        "options": recipe.backends[backend].options,
        "inputs": repr(recipe.inputs_for(variant) if variant else recipe.inputs),
        "weightpack": __version__,
        "libraries": {
            k: v
            for k, v in environment.capture()["libraries"].items()
            if k in ("torch", "onnx", "transformers", "tensorrt")
        },
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _build_package(
    recipe: Recipe,
    variant: str,
    backend: str,
    fetched: sources.FetchedSource,
    inputs: Tensors,
    reference_class: str,
    options: PackOptions,
    ui: UI,
) -> PackageBuild:
    zip_path = options.out_dir / recipe.zip_name(variant, backend)
    manifest_path = manifest.manifest_path_for(zip_path)
    key = input_key(fetched, recipe, backend, variant)
    reused = _reusable(zip_path, manifest_path, key)
    if reused is not None:
        ui.info(f"  reusing {zip_path.name} (inputs unchanged)")
        return PackageBuild(
            variant,
            backend,
            reused[0],
            manifest_path,
            reused[1]["model_class"],
            reused[1]["packageManifest"],
            reused=True,
        )
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{variant}-{backend}-", dir=options.out_dir))
    try:
        with ui.stage(f"export {variant} -> {backend}"):
            request = ExportRequest(
                upstream_dir=fetched.path,
                staging_dir=staging,
                architecture=recipe.architecture,
                variant=variant,
                task=recipe.task,
                options=recipe.backends[backend].options,
                sample_inputs=inputs,
                reference_class=reference_class,
            )
            result = get_backend(backend).load_exporter()(request)
            model_class = recipe.backends[backend].model_class or result.model_class
        with ui.stage(f"zip {zip_path.name}"):
            archive.validate_tree(staging)
            zip_result = archive.build_zip(staging, zip_path)
            manifest.write_manifest(
                zip_result,
                package_manifest=result.package_manifest,
                provenance=fetched.provenance,
                extra={
                    "input_key": key,
                    "model_class": model_class,
                    "family": recipe.family,
                    "architecture": recipe.architecture,
                    "task": recipe.task,
                    "variant": variant,
                    "backend": backend,
                    "wire_backend": get_backend(backend).wire_name,
                    "export_notes": result.notes,
                },
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackageBuild(
        variant, backend, zip_result, manifest_path, model_class, result.package_manifest, reused=False
    )


def _reusable(zip_path: Path, manifest_path: Path, key: str) -> tuple[archive.ZipResult, dict] | None:
    """A previous build's zip + manifest when both exist, match each other and were built from ``key``."""
    if not (zip_path.is_file() and manifest_path.is_file()):
        return None
    try:
        data = manifest.read_manifest(manifest_path)
        if data.get("input_key") != key:
            return None
        manifest.verify_zip_against_manifest(zip_path, data)
    except (WeightpackError, ValueError, KeyError, OSError):
        return None
    files = [archive.FileEntry(**f) for f in data["files"]]
    z = data["zip"]
    return archive.ZipResult(
        zip_path=zip_path, size=z["size"], md5=z["md5"], sha256=z["sha256"], files=files
    ), data


def _verify(
    recipe: Recipe,
    build: PackageBuild,
    device: str,
    upstream_dir: Path,
    inputs: Tensors,
    ref_outputs: Tensors,
    options: PackOptions,
    report: Report,
    ui: UI,
    floors: dict[str, dict] | None = None,
) -> Tensors | None:
    """Unzip as a consumer does, load through the model class, check parity, then time it; returns the
    package's outputs on the parity inputs (``None`` when it could not be loaded)."""
    where = f"{build.variant}/{build.backend} on {device}"
    with tempfile.TemporaryDirectory(prefix="weightpack-verify-") as tmp:
        unzip_dir = Path(tmp) / "package"
        try:
            with ui.stage(f"load {where} from the zip"):
                model, cold = _cold_start(build, device, unzip_dir, inputs)
        except (BackendError, WeightpackError, OSError, ValueError, RuntimeError) as exc:
            report.fail("load", build.variant, build.backend, device, f"{type(exc).__name__}: {exc}")
            ui.warn(f"{where}: {exc}")
            return None
        report.cold_start.append(
            {"variant": build.variant, "backend": build.backend, "device": device, **cold}
        )
        outputs = _check_parity(recipe, build, device, model, inputs, ref_outputs, report, ui, floors)
        if options.measure_latency:
            with ui.stage(f"latency {where} (batch {', '.join(map(str, recipe.bench.batch_sizes))})"):
                _measure_latency(recipe, build, device, model, upstream_dir, report)
        del model
    return outputs


def _cold_start(
    build: PackageBuild, device: str, unzip_dir: Path, inputs: Tensors
) -> tuple[PackageModel, dict]:
    """Unzip + from_pretrained + first inference, timed separately, with memory around the load."""
    rss_before = memory.rss_bytes()
    memory.reset_cuda_peak(device)
    t0 = time.perf_counter()
    archive.safe_extract(build.zip_result.zip_path, unzip_dir)
    t1 = time.perf_counter()
    model = load_model_class(build.model_class).from_pretrained(str(unzip_dir), device=device)
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
    }
    return model, cold


def report_dir(report: Report) -> Path:
    """The output folder a report is written to (kept in its meta by :func:`run_pack`)."""
    return Path(report.meta["out_dir"])


def _tolerance_fn(
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
) -> Tensors:
    outputs = run_model(model, inputs)
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
    results = compare_outputs(ref_outputs, outputs, _tolerance_fn(recipe, build.backend, floors))
    for r in results:
        report.add_parity(build.variant, build.backend, device, r)
        if not r.passed:
            ui.warn(
                f"parity {build.variant}/{build.backend}/{device} {r.output}: {r.reason} "
                f"(max_abs={r.max_abs}, atol={r.atol}, rtol={r.rtol})"
            )
    for c in task_checks(recipe.task, ref_outputs, outputs, recipe.parity.min_cosine):
        report.add_task_check(
            build.variant, build.backend, device, c.check, c.output, c.value, c.threshold, c.passed
        )
        if not c.passed:
            ui.warn(
                f"task check {build.variant}/{build.backend}/{device} {c.check}: "
                f"{c.value:.6g} < {c.threshold}"
            )
    return outputs


def _measure_latency(
    recipe: Recipe, build: PackageBuild, device: str, model: Any, upstream_dir: Path, report: Report
) -> None:
    b = recipe.bench
    config = LatencyConfig(b.warmup_iters, b.warmup_s, b.min_iters, b.min_time_s, b.max_time_s)
    for batch_size in b.batch_sizes:
        sets = build_input_sets(recipe.inputs_for(build.variant), upstream_dir, batch_size)
        distinct = validate_input_sets(sets)
        rss_before = memory.rss_bytes()
        memory.reset_cuda_peak(device)
        result = measure_model(model, device, sets, config)
        mem = {
            "rss_bytes": memory.rss_bytes(),
            "rss_delta_bytes": memory.rss_bytes() - rss_before,
            "peak_rss_bytes": memory.peak_rss_bytes(),
            **memory.cuda_peak(device),
        }
        report.add_latency(build.variant, build.backend, device, batch_size, result, mem, distinct)
