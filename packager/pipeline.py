"""One ``pack`` run: fetch -> reference -> export + zip (``build``) -> verify (``verify``) -> report.

Each step is a function from files to files. Export + zip are skipped when a zip and manifest built from
the same inputs exist (see :mod:`packager.build`), so re-running after an interruption finishes the job
instead of redoing it. Failures of one package are recorded and the run goes on with the others; the
report's ``passed`` is false and the CLI exits 1. Only bad input (recipe, flags, sources) aborts the
whole run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.device import export_device
from backends.errors import InputMismatchError
from backends.loaded import release as release_reference
from backends.registry import get_backend, load_object
from bench import environment
from bench.markdown import render_markdown
from bench.report import Report
from bench.threads import apply_threads
from packager import atomic, reuse, sources
from packager.build import PackageBuild, hinted
from packager.errors import EXIT_BAD_INPUT, ExportError, UsageError, WeightpackError, WriteError
from packager.goldens import ParityCase, has_cases, load_golden, save_golden
from packager.jobs import BuildTask, machine_default_jobs, run_builds, upstream_bytes
from packager.outcome import record_failure, record_verification
from packager.package_check import package_check, recorded_floors, tolerances_for
from packager.recipes import Recipe
from packager.reference import ReferenceSpec, check_recipe_imports, reference_case, reference_for, shape_cases
from packager.settings import RunSettings
from packager.ui import UI
from packager.verify import compare_devices, measure_noise_floor, verify_on_device


@dataclass
class PreparedVariant:
    """A variant ready to build: its upstream files, reference, and its golden (the reference's outputs on
    every case its packages are checked on, which the check reads back as every other entry does)."""

    name: str
    fetched: sources.FetchedSource
    spec: ReferenceSpec
    golden: Path
    cases: tuple[ParityCase, ...]
    ref_key: str

    @property
    def inputs(self) -> dict:
        """The parity batch (what exporters trace with)."""
        return self.cases[0].inputs


@dataclass
class PackOptions:
    """What to build and where; mirrors the CLI flags."""

    variants: list[str]
    backends: list[str]
    out_dir: Path
    cache_dir: Path
    settings: RunSettings = field(default_factory=RunSettings)
    """Devices (resolved), threads, archive limits, latency on/off: passed on as one value."""
    reverify: bool = False
    """``--reverify``: check every package and compute reference outputs again, ignoring kept results."""
    jobs: int | None = None
    """``--jobs``: exports + zips in parallel processes (default: what suits the machine)."""
    extra_meta: dict[str, Any] = field(default_factory=dict)
    wait: bool = False  # wait for another run holding out_dir instead of refusing
    strict: bool = False  # refuse unpinned sources instead of warning
    cluster: Any = None
    """``--ray``: builds and verifies each package on a cluster node instead (``packager.cluster``)."""


def select(
    recipe: Recipe, variants: list[str] | None, backends: list[str] | None
) -> tuple[list[str], list[str]]:
    """Validate the requested variants/backends against the recipe (default: the recipe's default variant
    and every backend it enables). A name given twice is packaged once (first position kept)."""
    chosen_variants = list(dict.fromkeys(variants or [recipe.default_variant]))
    for v in chosen_variants:
        if v not in recipe.variants:
            raise UsageError(
                f"--variants: '{v}' is not a variant of {recipe.family} ({recipe.path}); "
                f"accepted: {', '.join(recipe.variants)}"
            )
    chosen_backends = list(dict.fromkeys(backends or recipe.backends))
    for b in chosen_backends:
        if b not in recipe.backends:
            raise UsageError(
                f"--backends: '{b}' is not enabled in {recipe.path}; accepted: {', '.join(recipe.backends)}"
            )
    return chosen_variants, chosen_backends


def run_pack(recipe: Recipe, options: PackOptions, ui: UI | None = None) -> Report:
    """Build, verify and report every (variant, backend) package; returns the report (already written).

    The output folder is held for the whole run (see :mod:`packager.outdir`). An error that aborts the
    run (bad input, a full disk) is recorded in the report, which is written before the error goes on.
    """
    from packager.outdir import claim

    ui = ui or UI()
    local = options.cluster is None  # with --ray each node resolves and checks its own devices
    devices = list(options.settings.devices) if local else []
    blocked = preflight(options.backends, devices) if local else {}
    warnings = sources.unpinned_warnings(
        recipe.path, {v: recipe.variants[v].source for v in options.variants}
    )
    if warnings and options.strict:
        raise UsageError("--strict: " + "; ".join(warnings))
    for warning in warnings:
        ui.warn(warning)
    threads = apply_threads(options.settings.thread_settings(recipe.bench.threads))
    with claim(options.out_dir, wait=options.wait):
        report = Report.start(
            recipe, environment.capture(threads), {**options.extra_meta, "out_dir": str(options.out_dir)}
        )
        report.environment["threads"] = threads.to_dict()
        report.environment["warnings"] = [*warnings, *(report.environment.get("warnings") or [])]
        try:
            _pack_variants(recipe, options, devices, blocked, report, ui, threads)
        except (WeightpackError, OSError) as exc:
            error = WriteError.of(exc, options.out_dir) if isinstance(exc, OSError) else exc
            record_failure(report, "pack", "-", None, None, error)
            _write_report_if_possible(report, options.out_dir, ui)
            raise error from None
        environment.finish(report.environment)
        for warning in report.environment.get("warnings") or []:
            ui.warn(warning)
        write_report(report, options.out_dir)
    return report


def _pack_variants(
    recipe: Recipe,
    options: PackOptions,
    devices: list[str],
    blocked: dict[str, Any],
    report: Report,
    ui: UI,
    threads: Any,
) -> None:
    """Prepare every variant, build every package (in parallel with --jobs), then check each one. Bad input
    in one variant (its module, inputs or reference) is recorded and the others go on."""
    try:
        check_recipe_imports(recipe, options.backends)
        variants = options.variants
    except WeightpackError as exc:
        _record_bad_input(report, "recipe", "*", None, exc, ui)
        variants = []
    prepared: dict[str, PreparedVariant] = {}
    for variant in variants:
        with _bad_input_recorded(report, variant, ui):
            prepared[variant] = _prepare_variant(recipe, variant, options, report, ui)
    if options.cluster is not None:  # each package built and verified on a node: packager.cluster
        return options.cluster.pack(recipe, prepared, options, report, ui, threads)
    for v in prepared.values():
        for backend, exc in blocked.items():  # never built: recorded with the fix (exit 3)
            record_failure(report, "export", v.name, backend, None, exc)
            ui.warn(f"{v.name}/{backend}: {exc}")
    tasks = [
        BuildTask(
            recipe, v.name, backend, v.fetched, v.inputs, v.spec.model_class, options.out_dir, v.spec.kwargs,
            device=export_device(devices), limits=options.settings.limits,
        )
        for v in prepared.values()
        for backend in options.backends
        if backend not in blocked and backend in (recipe.variants[v.name].backends or [backend])
    ]  # fmt: skip
    upstream = max((upstream_bytes(v.fetched) for v in prepared.values()), default=0)
    jobs = options.jobs or machine_default_jobs(len(tasks), upstream)
    results, jobs_ran = run_builds(tasks, jobs, ui, threads)
    release_reference()  # verification's memory figures must not include it
    report.meta["jobs"] = {"requested": options.jobs, "default": options.jobs is None, "ran": jobs_ran}
    env_fingerprint = reuse.environment_fingerprint(report.environment)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, WeightpackError):
            if isinstance(result, UsageError):
                raise result
            if isinstance(result, ExportError):  # the upstream's own file in this format, if it ships one
                source = recipe.variants[task.variant].source
                result = hinted(result, recipe.path, task.variant, task.backend, source, task.fetched)
            record_failure(report, "export", task.variant, task.backend, None, result)
            ui.warn(f"{task.variant}/{task.backend}: {result}")
            continue
        with _bad_input_recorded(report, task.variant, ui):
            report.add_package(result)
            _verify_build(recipe, prepared[task.variant], result, options, report, ui, env_fingerprint)


def _write_report_if_possible(report: Report, out_dir: Path, ui: UI) -> None:
    """The report of an aborted run, unless the disk that aborted it cannot take it either."""
    try:
        write_report(report, out_dir)
    except OSError as exc:
        ui.warn(f"could not write the report of the aborted run to {out_dir}: {exc.strerror or exc}")


def _record_bad_input(
    report: Report, stage: str, variant: str, backend: str | None, exc: Exception, ui: UI
) -> None:
    """Bad input (the recipe's module, inputs or reference) is recorded with its exit code (2) and the run
    goes on with the other variants, so one report says everything that is wrong; the CLI exits 2."""
    record_failure(report, stage, variant, backend, None, exc)
    ui.warn(str(exc))


def preflight(backends: list[str], devices: list[str]) -> dict[str, WeightpackError]:
    """Each backend's environment check for these devices (an onnxruntime install that cannot serve CUDA,
    TensorRT missing) before anything is built; returns the backends that cannot run, with why. Their
    packages are then recorded as failed (exit 3, the fix in the message) without building anything, and
    the other backends go on."""
    blocked: dict[str, WeightpackError] = {}
    for name in backends:
        check = get_backend(name).preflight
        if check:
            try:
                load_object(check)(devices)
            except WeightpackError as exc:
                blocked[name] = exc
    return blocked


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


def _prepare_variant(
    recipe: Recipe, variant: str, options: PackOptions, report: Report, ui: UI
) -> PreparedVariant:
    """Fetch the variant's upstream files and compute (or read back) its reference outputs."""
    spec = recipe.variants[variant]
    with ui.stage(f"fetch {recipe.family}/{variant} from {sources.public_uri(spec.source)}"):
        fetched = sources.fetch(
            spec.source,
            cache_dir=options.cache_dir,
            allow_patterns=spec.allow_patterns,
            progress=ui.download_progress,
        )
    report.provenance[variant] = fetched.provenance
    fetched = upstream_view(fetched, options.out_dir)
    files = [f["path"] for f in fetched.provenance.get("files") or []]
    spec = reference_for(recipe, variant, fetched.path, files)
    reference_class = spec.model_class
    golden = options.out_dir / "goldens" / f"{recipe.architecture}-{variant}-reference.npz"
    ref_key = reuse.reference_key(recipe, variant, fetched.provenance, spec)
    base = recipe.inputs_for(variant)
    seal = reuse.run_seal(options.cache_dir, report, ui)
    kept = None if options.reverify or not has_cases(golden) else reuse.load_reference(golden, ref_key, seal)
    cases = load_golden(golden) if kept is not None else ()
    if cases and base.steps > 1 and (cases[0].sequence is None or cases[0].sequence.steps != base.steps):
        kept = None
    if kept is not None:
        _, _, record = kept
        casts = record["input_casts"]
        spec.kwargs.update(record["learned_kwargs"])
        if record["noise_floor"] is not None:
            report.noise_floor[variant] = record["noise_floor"]
        ui.info(f"  reference outputs of {recipe.family}/{variant} reused from {golden.name}")
    else:
        given = dict(spec.kwargs)
        with ui.stage(f"reference outputs of {recipe.family}/{variant} ({spec.description})"):
            first, casts = reference_case(spec, fetched.path, variant, base, base.shape_label(0) or "")
        if recipe.parity.noise_floor:
            with ui.stage(f"noise floor of {recipe.family}/{variant} (reference fp32 vs fp64, cpu)"):
                report.noise_floor[variant] = measure_noise_floor(
                    reference_class, fetched.path, first.inputs, first.reference, variant, ui, spec.kwargs
                )
        cases = (first, *shape_cases(spec, fetched.path, variant, base, ui))
        save_golden(golden, cases)
        learned = {k: v for k, v in spec.kwargs.items() if given.get(k, object()) != v}
        floor = report.noise_floor.get(variant)
        reuse.save_reference(golden, ref_key, seal, casts=casts, learned=learned, noise_floor=floor)
    report.references[variant] = {
        **(
            {"input_shapes": [base.shape_label(i) for i in range(base.shape_count)]}
            if base.shape_count > 1
            else {}
        ),
        "model_class": reference_class,
        "kind": spec.kind,
        "description": spec.description,
        "input_casts": casts,
        "outputs": {k: list(v.shape) for k, v in cases[0].reference.items()},
        "golden": golden.relative_to(options.out_dir).as_posix(),
    }
    return PreparedVariant(variant, fetched, spec, golden, cases, ref_key)


@contextlib.contextmanager
def _bad_input_recorded(report: Report, variant: str, ui: UI) -> Iterator[None]:
    """Bad input found while preparing or checking a variant is recorded and the run goes on."""
    try:
        yield
    except WeightpackError as exc:
        if exc.exit_code != EXIT_BAD_INPUT or isinstance(exc, UsageError):
            raise
        stage = "inputs" if isinstance(exc, InputMismatchError) else "reference"
        _record_bad_input(report, stage, variant, "reference", exc, ui)


def _verify_build(
    recipe: Recipe,
    v: PreparedVariant,
    build: PackageBuild,
    options: PackOptions,
    report: Report,
    ui: UI,
    env_fingerprint: str,
) -> None:
    """Check one package on every device (or keep its earlier passed checks), then compare devices."""
    variant, backend, settings = build.variant, build.backend, options.settings
    per_device, seal = {}, reuse.run_seal(options.cache_dir, report, ui)
    for device in settings.devices:
        key = reuse.verification_key(
            recipe, build, device, settings.measure_latency, v.ref_key, env_fingerprint
        )
        path = reuse.record_path(options.out_dir, build, device)
        sha = build.zip_result.sha256
        record = None if options.reverify else reuse.load_verification(path, key, options.out_dir, seal, sha)
        if record is not None:
            per_device[device] = reuse.replay(record, report, options.out_dir)
            report.packages[-1].setdefault("verification", {})[device] = {
                "reused_from": record["verified_at"]
            }
            ui.info(f"  {variant}/{backend} on {device}: checks reused from {record['verified_at']}")
            continue
        check = package_check(recipe, build, device, settings, v.golden)
        verification = verify_on_device(check, options.out_dir / "goldens", ui)
        record_verification(report, build, verification, options.out_dir)
        if verification.outputs is not None:
            per_device[device] = verification.outputs
        if reuse.checks_passed(report, build, device):
            reuse.save_verification(path, key, report, build, device, seal)
    tolerance = tolerances_for(recipe, backend, recorded_floors(v.golden))
    for devices_pair, result in compare_devices(tolerance, per_device):
        report.add_cross_device(variant, backend, devices_pair, result)


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
        atomic.point_link(link, (fetched.path / rel).resolve())  # a link left here is re-pointed
    return sources.FetchedSource(path=view, provenance=fetched.provenance)
