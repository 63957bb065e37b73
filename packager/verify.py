"""``pack``'s verify step for one built package on one device, as a consumer would use it: unzip, load
through its model class, check parity against the upstream reference (plus task-level checks), then
measure latency and memory, all through the package's :class:`~packager.package_check.PackageCheck` (the
one check the nightly, ``verify-remote`` and compare's measure step use too).

Each function takes its inputs and returns its result (Model Navigator style): the pipeline assembles the
report from the returned values; nothing here writes into a report.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Tensors
from backends.errors import InputMismatchError
from backends.outputs import run_model
from bench.parity import OutputParity, as_float64, compare_outputs, noise_floor
from packager import atomic
from packager.check import CheckResult, ToleranceFn
from packager.consumer import load_model_class
from packager.errors import WeightpackError, WriteError
from packager.goldens import save_arrays
from packager.package_check import LatencyRow, PackageCheck
from packager.ui import UI


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
    """Why it failed (recorded with its exit code by ``packager.outcome.record_failure``)."""
    stage: str = "load"
    """Where ``error`` happened: ``load``, ``parity`` (the package refused the reference's inputs) or
    ``latency`` (it passed its checks but refused a timed batch size)."""
    shape: str | None = None
    """The input shape the ``parity`` stage failed at."""

    @property
    def outputs(self) -> Tensors | None:
        """The package's outputs on the parity inputs (the first shape), when it ran."""
        return self.checks[0][1].outputs if self.checks else None


def verify_on_device(check: PackageCheck, goldens_dir: Path, ui: UI) -> Verification:
    """Unzip as a consumer does, load through the model class, check parity at every case of the golden,
    then time every row of the latency plan; the package's outputs are saved under ``goldens_dir``."""
    package, device = check.package, check.device
    where = f"{package.variant}/{package.backend} on {device}"
    result = Verification(device=device)
    # under the output folder, never /tmp: a killed run's leftover is swept by the next run
    with atomic.temp_dir(package.path.parent, "verify") as tmp:
        try:
            with ui.stage(f"load {where} from the zip"):
                opened = check.open(tmp / "package")
        except (WeightpackError, OSError, ValueError, RuntimeError) as exc:
            result.error = _environment_error(exc, package.path)
            ui.warn(f"{where}: {result.error}")
            return result
        result.cold_start = opened.cold_start
        for case in check.checked_cases():
            try:
                checked = check.check(opened, case)
            except InputMismatchError as exc:  # the reference took these inputs: the package is wrong
                result.error, result.stage, result.shape = exc, "parity", case.label
                result.checks = []
                ui.warn(f"variant '{package.variant}', backend {package.backend} on {device}: {exc}")
                return result
            result.checks.append((case.label, checked))
            _warn(ui, where + (f" at {case.label}" if case.label else ""), checked)
        result.golden = _save_outputs(check, goldens_dir, result.checks[0][1].outputs)
        plan = check.latency_plan()
        if plan:
            sizes = ", ".join(map(str, dict.fromkeys(r.batch_size for r in plan)))
            try:
                with ui.stage(f"latency {where} (batch {sizes})"):
                    baseline = opened.cold_start.get("cuda_device_before_bytes")  # before the load
                    result.latency = [check.measure(opened.model, row, baseline) for row in plan]
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


def _save_outputs(check: PackageCheck, goldens_dir: Path, outputs: Tensors) -> Path:
    stem = check.package.path.name.removesuffix(".zip")
    return save_arrays(
        goldens_dir / f"{stem}-{check.device.replace(':', '')}.npz",
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
    tolerance: ToleranceFn, per_device: dict[str, Tensors]
) -> list[tuple[tuple[str, str], OutputParity]]:
    """The package's CPU outputs against its outputs on each other device (reported, not gated), under
    the package's tolerance (its :class:`PackageCheck`'s)."""
    if "cpu" not in per_device:
        return []
    return [
        (("cpu", device), r)
        for device, outs in per_device.items()
        if device != "cpu"
        for r in compare_outputs(per_device["cpu"], outs, tolerance)
    ]
