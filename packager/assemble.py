"""The report assembled from what the steps return (Model Navigator style): the verify step returns a
:class:`~packager.verify.Verification`, and this is where it enters the :class:`~bench.report.Report`."""

from __future__ import annotations

from pathlib import Path

from bench.report import Report
from packager import failures
from packager.build import PackageBuild
from packager.verify import Verification


def record_verification(report: Report, build: PackageBuild, v: Verification, out_dir: Path) -> None:
    """Put one package's verification on one device into the report: where a verification enters it."""
    variant, backend = build.variant, build.backend
    if v.error is not None and v.stage == "parity":
        at = f" at input shape {v.shape}" if v.shape else ""
        message = f"variant '{variant}', backend {backend} on {v.device}{at}: {v.error}"
        report.fail("parity", variant, backend, v.device, message, exit_code=1)
    elif v.error is not None and v.stage == "latency":  # a package that cannot take a timed batch
        failures.record(report, "latency", variant, backend, v.device, v.error, exit_code=1)
    elif v.error is not None:
        failures.record(report, "load", variant, backend, v.device, v.error)
    if v.cold_start is None:
        return
    report.cold_start.append({"variant": variant, "backend": backend, "device": v.device, **v.cold_start})
    if v.golden is not None:
        report.goldens.append(
            {
                "variant": variant,
                "backend": backend,
                "device": v.device,
                "path": v.golden.relative_to(out_dir).as_posix(),
            }
        )
    for label, check in v.checks:
        for r in check.parity:
            report.add_parity(variant, backend, v.device, r, label)
        for c in check.task_checks:
            report.add_task_check(
                variant, backend, v.device, c.check, c.output, c.value, c.threshold, c.passed, label
            )
    for row in v.latency:
        report.add_latency(
            variant,
            backend,
            v.device,
            row.batch_size,
            row.result,
            row.memory,
            row.input_sets,
            input_shape=row.input_shape,
            inputs_digest=row.inputs_digest,
        )
