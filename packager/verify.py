"""``pack``'s verify step for one built package on one device, as a consumer would use it: unzip, load
through its model class, check parity against the upstream reference (plus task-level checks), then
measure latency and memory.

Each function takes a small typed request and returns its result (Model Navigator style): the pipeline
assembles the report from the returned values; nothing here writes into a report.
"""

from __future__ import annotations

import errno
import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Tensors
from backends.errors import InputMismatchError
from backends.outputs import run_model
from backends.registry import load_kwargs_for
from bench import memory
from bench.latency import LatencyConfig, LatencyResult, measure_model, validate_input_sets
from bench.parity import (
    OutputParity,
    as_float64,
    compare_outputs,
    default_tolerance,
    noise_floor,
    noise_floor_tolerance,
)
from bench.threads import current_threads
from packager import atomic
from packager.build import PackageBuild
from packager.check import CheckRequest, CheckResult, check_outputs, open_package
from packager.consumer import load_model_class
from packager.errors import WeightpackError, WriteError
from packager.goldens import save_arrays
from packager.inputs import build_input_sets
from packager.recipes import InputsRecipe, Recipe
from packager.sequence import CallSequence
from packager.ui import UI


@dataclass(frozen=True)
class ShapeCase:
    """One more shape of a variant's shape set: its inputs, and the reference's outputs on them."""

    label: str
    """``image 1x3x240x320`` (``InputsRecipe.shape_label``), what the report rows say."""
    spec: InputsRecipe
    """The variant's inputs at this shape (latency builds its batches from it)."""
    inputs: Tensors
    reference: Tensors
    sequence: CallSequence | None = None
    """A recurrent model's sequence at this shape (``inputs``/``reference`` are its first step)."""
    batch_proof: bool = False
    """A second sample added to a batch-1 shape set to prove the batch axis dynamic: checked only on
    packages that declare a dynamic batch, never timed."""


@dataclass(frozen=True)
class VerifyRequest:
    """One package on one device, and where its outputs are recorded."""

    recipe: Recipe
    build: PackageBuild
    device: str
    upstream_dir: Path
    inputs: Tensors
    reference: Tensors
    goldens_dir: Path
    """Folder the package's outputs are saved in (``OUT/goldens``)."""
    measure_latency: bool = True
    floors: dict[str, dict] | None = None
    """Measured noise floor per output (``[parity] noise_floor = true``)."""
    shapes: tuple[ShapeCase, ...] = ()
    """With a shape set, ``inputs``/``reference`` are at its first shape and these are the others: the
    same loaded package is checked and timed at each, and every row says which (``input_shape``)."""
    sequence: CallSequence | None = None
    """A recurrent model's sequence at the first shape (``inputs``/``reference`` are its first step)."""


@dataclass
class LatencyRow:
    """One batch size's timing with the memory around it."""

    batch_size: int
    result: LatencyResult
    memory: dict[str, Any]
    input_sets: int
    input_shape: str | None = None


@dataclass
class Verification:
    """What verifying one package on one device found; ``error`` is set when it could not be loaded or
    refused the reference's inputs."""

    device: str
    cold_start: dict[str, Any] | None = None
    checks: list[tuple[str | None, CheckResult]] = field(default_factory=list)
    """One check per shape (label ``None`` without a shape set); the first is at the parity inputs."""
    golden: Path | None = None
    latency: list[LatencyRow] = field(default_factory=list)
    error: BaseException | None = None
    """Why it failed (recorded with its exit code by ``packager.failures``)."""
    stage: str = "load"
    """Where ``error`` happened: ``load``, ``parity`` (the package refused the reference's inputs) or
    ``latency`` (it passed its checks but refused a timed batch size)."""
    shape: str | None = None
    """The input shape the ``parity`` stage failed at."""

    @property
    def outputs(self) -> Tensors | None:
        """The package's outputs on the parity inputs (the first shape), when it ran."""
        return self.checks[0][1].outputs if self.checks else None


def verify_on_device(request: VerifyRequest, ui: UI) -> Verification:
    """Unzip as a consumer does, load through the model class, check parity at every shape, then time it."""
    build, device = request.build, request.device
    where = f"{build.variant}/{build.backend} on {device}"
    base = request.recipe.inputs_for(build.variant)
    first = ShapeCase(base.shape_label(0) or "", base, request.inputs, request.reference, request.sequence)
    static = "staticBatchSize" in (build.package_manifest or {})
    cases = [first, *(c for c in request.shapes if not (c.batch_proof and static))]
    result = Verification(device=device)
    # under the output folder, never /tmp: a killed run's leftover is swept by the next run
    with atomic.temp_dir(build.zip_result.zip_path.parent, "verify") as tmp:
        try:
            with ui.stage(f"load {where} from the zip"):
                opened = open_package(
                    build.zip_result.zip_path,
                    build.model_class,
                    device,
                    request.inputs,
                    tmp / "package",
                    load_kwargs={**current_threads().model_kwargs(), **load_kwargs_for(build.backend)},
                    limits=build.limits,
                )
        except (WeightpackError, OSError, ValueError, RuntimeError) as exc:
            result.error = _environment_error(exc, build.zip_result.zip_path)
            ui.warn(f"{where}: {result.error}")
            return result
        result.cold_start = opened.cold_start
        for case in cases:
            label = case.label or None
            try:
                check = check_outputs(opened.model, _check_request(request, case), opened)
            except InputMismatchError as exc:  # the reference took these inputs: the package is wrong
                result.error, result.stage, result.shape = exc, "parity", label
                result.checks = []
                ui.warn(f"variant '{build.variant}', backend {build.backend} on {device}: {exc}")
                return result
            result.checks.append((label, check))
            _warn(ui, where + (f" at {label}" if label else ""), check)
        result.golden = _save_outputs(request, result.checks[0][1].outputs)
        if request.measure_latency:
            bench = request.recipe.bench
            try:
                with ui.stage(f"latency {where} (batch {', '.join(map(str, bench.batch_sizes))})"):
                    baseline = opened.cold_start.get("cuda_device_before_bytes")  # before the load
                    timed: set[str] = set()
                    for case in cases:
                        if not case.batch_proof:
                            result.latency += measure_latency(
                                request, opened.model, baseline, case.spec, case.label or None, timed
                            )
            except (WeightpackError, ValueError, RuntimeError) as exc:
                # the parity inputs ran, a latency batch did not (a batch outside a TensorRT profile, a
                # static batch): this package's failed check, recorded with the checks that did run
                result.error, result.stage = exc, "latency"
                ui.warn(f"{where}: {exc}")
        del opened
    return result


# A write the file system refused for want of room: a full disk, the file-size limit, a quota.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _environment_error(exc: BaseException, zip_path: Path) -> BaseException:
    """A full disk or file-size limit while ``zip_path`` is extracted into its folder's scratch space is
    the environment's fault, not the package's: a WriteError (exit 3, with the run's report), never a
    failed check (exit 1). Any other error is the package's and stays as it is."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        plain = WriteError.of(exc, zip_path.parent)  # the folder, the errno, and what to do
        return WriteError(f"extracting {zip_path.name} for verification: {plain}")
    return exc


def _check_request(request: VerifyRequest, case: ShapeCase) -> CheckRequest:
    recipe, build = request.recipe, request.build
    return CheckRequest(
        model_class=build.model_class,
        device=request.device,
        inputs=case.inputs,
        reference=case.reference,
        sequence=case.sequence,
        tolerance=tolerances_for(recipe, build.backend, request.floors),
        task=recipe.task,
        min_cosine=recipe.parity.min_cosine,
        task_check=recipe.parity.task_check,
    )


def _save_outputs(request: VerifyRequest, outputs: Tensors) -> Path:
    stem = request.build.zip_result.zip_path.name.removesuffix(".zip")
    return save_arrays(
        request.goldens_dir / f"{stem}-{request.device.replace(':', '')}.npz",
        {f"output/{k}": v for k, v in outputs.items()},
    )


def _warn(ui: UI, where: str, check: CheckResult) -> None:
    for r in check.parity:
        if not r.passed:
            ui.warn(
                f"parity {where} {r.output}: {r.reason} (max_abs={r.max_abs}, atol={r.atol}, rtol={r.rtol})"
            )
    for c in check.task_checks:
        if not c.passed:
            bound = "at least" if c.rule == ">=" else "at most"
            ui.warn(f"task check {where} {c.check} on {c.output}: {c.value:.6g}, needs {bound} {c.threshold}")


def tolerances_for(
    recipe: Recipe, backend: str, floors: dict[str, dict] | None = None
) -> Callable[[str, str], tuple[float, float]]:
    """Recipe per-output override (the exact name, else the first glob pattern that matches it, such as
    ``"raw.*"``, ``"*"`` last), then recipe per-backend override, then the measured noise floor (when
    ``[parity] noise_floor = true``), then the dtype/backend defaults."""
    quantization = recipe.backends[backend].quantization

    def tolerance_for(output: str, dtype: str) -> tuple[float, float]:
        key = matching_key(recipe.parity.tolerances, output)
        if key is not None:
            t = recipe.parity.tolerances[key]
            return t.atol, t.rtol
        if backend in recipe.parity.backend_tolerances:
            t = recipe.parity.backend_tolerances[backend]
            return t.atol, t.rtol
        if floors and output in floors:
            return noise_floor_tolerance(floors[output], quantization)
        return default_tolerance(dtype, backend, quantization)

    return tolerance_for


def matching_key(patterns: Iterable[str], name: str) -> str | None:
    """The key of ``patterns`` that applies to output ``name``: the exact name, else the first glob
    pattern (``*``, ``?``, ``[...]``, matching across dots) in the recipe's order, ``"*"`` after the rest."""
    keys = list(patterns)
    if name in keys:
        return name
    globs = [k for k in keys if k != "*" and any(c in k for c in "*?[")] + ["*"] * ("*" in keys)
    return next((k for k in globs if fnmatch.fnmatchcase(name, k)), None)


def measure_latency(
    request: VerifyRequest,
    model: Any,
    baseline_used_bytes: int | None = None,
    spec: InputsRecipe | None = None,
    label: str | None = None,
    timed: set[str] | None = None,
) -> list[LatencyRow]:
    """Time ``model`` at each of the recipe's batch sizes, with the memory around each run
    (``baseline_used_bytes``: device memory in use before the model was loaded; ``spec``/``label``: one
    shape of a variant's shape set, whose rows carry the full shape timed; ``timed``: those rows already
    measured, skipped: two shapes that differ only in batch give the same rows)."""
    spec = spec or request.recipe.inputs_for(request.build.variant)
    b = request.recipe.bench
    config = LatencyConfig(
        b.warmup_iters, b.warmup_s, b.min_iters, b.min_time_s, b.max_time_s, target_ci=b.target_ci
    )
    rows = []
    for batch_size in b.batch_sizes:
        row_label = spec.tensors_label(batch_size) if label else None
        if row_label and timed is not None:
            if row_label in timed:
                continue
            timed.add(row_label)
        sets = build_input_sets(spec, request.upstream_dir, batch_size)
        distinct = validate_input_sets(sets)
        rss_before = memory.rss_bytes()
        memory.reset_cuda_peak(request.device)
        result = measure_model(model, request.device, sets, config, baseline_used_bytes=baseline_used_bytes)
        mem = {
            "rss_bytes": memory.rss_bytes(),
            "rss_delta_bytes": memory.rss_bytes() - rss_before,
            "peak_rss_bytes": memory.peak_rss_bytes(),
            **memory.cuda_peak(request.device),
        }
        rows.append(LatencyRow(batch_size, result, mem, distinct, row_label))
    return rows


def measure_noise_floor(
    reference_class: str,
    upstream: Path,
    inputs: Tensors,
    ref_outputs: Tensors,
    variant: str,
    ui: UI,
    reference_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Run the reference class in float64 on the CPU and measure how far its fp32 outputs are from it.

    Returns the report's ``noise_floor`` entry: ``{"reference_class", "outputs": {name: floor}}``, or
    ``{"error", "outputs": {}}`` when the class cannot run in float64."""
    try:
        model = as_float64(
            load_model_class(reference_class).from_pretrained(
                upstream, device="cpu", variant=variant, **(reference_kwargs or {})
            )
        )
        ref64 = run_model(model, inputs)
        del model
    except (TypeError, RuntimeError, ValueError, WeightpackError) as exc:
        ui.warn(f"noise floor unavailable for {variant} ({exc}); default tolerances apply")
        return {"error": f"{type(exc).__name__}: {exc}", "outputs": {}}
    return {"reference_class": reference_class, "outputs": noise_floor(ref_outputs, ref64)}


def compare_devices(
    recipe: Recipe, build: PackageBuild, per_device: dict[str, Tensors], floors: dict | None
) -> list[tuple[tuple[str, str], OutputParity]]:
    """The package's CPU outputs against its outputs on each other device (reported, not gated)."""
    if "cpu" not in per_device:
        return []
    tolerance = tolerances_for(recipe, build.backend, floors)
    return [
        (("cpu", device), r)
        for device, outs in per_device.items()
        if device != "cpu"
        for r in compare_outputs(per_device["cpu"], outs, tolerance)
    ]
