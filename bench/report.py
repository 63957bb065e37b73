"""The report's data model: :class:`Report` accumulates results and ``to_dict()`` is ``report.json``, the
contract other tools read. Rendering lives apart: :mod:`bench.markdown` (``report.md``) and
:mod:`bench.side_by_side` (several reports as one table).

Schema ``weightpack.report/v2`` is documented key by key in docs/measurement.md. Latency entries keep every
raw sample (``samples_ms``, and ``device_time.samples_ms`` where a device timer ran) so later comparisons can
run statistics on the pooled samples, not on summaries.

v2 (from v1): latency entries gain ``p50_ci95_ms``, ``warmup_s``, ``harness_overhead_ns``,
``device_timer``, ``device_time`` (device-time statistics), ``memory`` and ``input_sets``; new top-level
``noise_floor`` and ``cross_device``; ``environment`` gains NVML snapshots and ``warnings``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bench.latency import LatencyResult, ci_half_width, summarize
from bench.parity import RULE, OutputParity
from bench.yardstick import stability

CANNOT_LOAD = "inference-models cannot load this package"
"""What every output says instead of PASSED for a package whose recipe declares the consumer cannot load it
(``[consumer] loads = false``)."""
SCHEMA = "weightpack.report/v2"
SCHEMA_VERSION = 2


@dataclass
class Report:
    """Accumulates results during a run; ``to_dict()`` is the JSON contract."""

    family: str
    architecture: str
    task: str
    recipe: str
    environment: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )
    packages: list[dict[str, Any]] = field(default_factory=list)
    parity: list[dict[str, Any]] = field(default_factory=list)
    task_checks: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    cold_start: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    references: dict[str, Any] = field(default_factory=dict)
    goldens: list[dict[str, Any]] = field(default_factory=list)
    noise_floor: dict[str, Any] = field(default_factory=dict)
    cross_device: list[dict[str, Any]] = field(default_factory=list)
    consumer: dict[str, Any] = field(default_factory=dict)
    """``{"loads": false, "reason": ...}`` when the recipe declares that inference-models cannot load its
    packages (``[consumer]``); empty when it does not say."""

    @classmethod
    def start(cls, recipe: Any, environment: dict[str, Any], meta: dict[str, Any] | None = None) -> Report:
        return cls(
            family=recipe.family,
            architecture=recipe.architecture,
            task=recipe.task,
            recipe=str(recipe.path),
            environment=environment,
            meta=dict(meta or {}),
            consumer=_consumer(getattr(recipe, "consumer", None)),
        )

    @property
    def passed(self) -> bool:
        """True only when something was checked and nothing failed."""
        checked = bool(self.parity or self.task_checks)
        return (
            checked
            and not self.failures
            and all(p["passed"] for p in self.parity)
            and all(c["passed"] for c in self.task_checks)
        )

    def fail(
        self,
        stage: str,
        variant: str,
        backend: str | None,
        device: str | None,
        message: str,
        **details: Any,
    ) -> None:
        """Record a failure; ``details`` (``reason``, ``error``, ``exit_code``) are kept as given."""
        self.failures.append(
            {
                "stage": stage,
                "variant": variant,
                "backend": backend,
                "device": device,
                "message": message,
                **details,
            }
        )

    def add_package(self, build: Any) -> None:
        z = build.zip_result
        self.packages.append(
            {
                "variant": build.variant,
                "backend": build.backend,
                "zip": z.zip_path.name,
                "manifest": build.manifest_path.name,
                "size": z.size,
                "md5": z.md5,
                "sha256": z.sha256,
                "files": [f.to_dict() for f in z.files],
                "model_class": build.model_class,
                "package_manifest": build.package_manifest,
                "reused": build.reused,
            }
        )

    def add_parity(
        self, variant: str, backend: str, device: str, result: OutputParity, input_shape: str | None = None
    ) -> None:
        """``input_shape``: which shape of a variant's shape set (the key is left out without one)."""
        self.parity.append(
            {
                "variant": variant,
                "backend": backend,
                "device": device,
                **_shape(input_shape),
                "rule": RULE,
                **result.to_dict(),
            }
        )

    def add_task_check(
        self,
        variant: str,
        backend: str,
        device: str,
        check: str,
        output: str,
        value: float,
        threshold: float,
        passed: bool,
        input_shape: str | None = None,
    ) -> None:
        self.task_checks.append(
            {
                "variant": variant,
                "backend": backend,
                "device": device,
                **_shape(input_shape),
                "check": check,
                "output": output,
                "value": value,
                "threshold": threshold,
                "passed": bool(passed),
            }
        )

    def add_latency(
        self,
        variant: str,
        backend: str,
        device: str,
        batch_size: int,
        result: LatencyResult,
        memory: dict[str, Any] | None = None,
        input_sets: int | None = None,
        input_shape: str | None = None,
        inputs_digest: str | None = None,
    ) -> None:
        """``inputs_digest``: a hash of the input sets timed (two rows with the same one timed the same
        arrays: ``pack``, the nightly and ``pack runs`` build them the same way)."""
        stats = summarize(result.samples_ms, batch_size)
        entry: dict[str, Any] = {
            "variant": variant,
            "backend": backend,
            "device": device,
            "batch_size": batch_size,
            **_shape(input_shape),
            **stats,
            "warmup_iters": result.warmup_iters,
            "warmup_s": result.warmup_s,
            "total_s": result.total_s,
            "stopped_by": result.stopped_by,
            "target_ci": result.target_ci,
            "ci_half_width": ci_half_width(result.samples_ms),
            "timer": result.timer,
            "harness_overhead_ns": result.harness_overhead_ns,
            "device_timer": result.device_timer,
            "input_sets": input_sets,
            "inputs_digest": inputs_digest,
            "memory": memory or {},
            "gpu_conditions": result.gpu_conditions,
            "throttled": bool(result.gpu_conditions and result.gpu_conditions.get("throttled")),
            "yardstick": result.yardstick,
            **stability(stats["cov"], result.yardstick),
            "samples_ms": [round(s, 6) for s in result.samples_ms],
        }
        if result.device_samples_ms:
            dev = summarize(result.device_samples_ms, batch_size)
            entry["device_time"] = {
                **dev,
                "samples_ms": [round(s, 6) for s in result.device_samples_ms],
            }
        else:
            entry["device_time"] = None
        self.latency.append(entry)

    def add_cross_device(
        self, variant: str, backend: str, devices: tuple[str, str], result: OutputParity
    ) -> None:
        """The same package on two devices (CPU vs CUDA), compared output by output. Reported, not gated:
        each device is already gated against the reference."""
        self.cross_device.append(
            {
                "variant": variant,
                "backend": backend,
                "devices": list(devices),
                "rule": RULE,
                **result.to_dict(),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "family": self.family,
            "architecture": self.architecture,
            "task": self.task,
            "recipe": self.recipe,
            "created_at": self.created_at,
            "meta": self.meta,
            "passed": self.passed,
            "packages": self.packages,
            "parity": self.parity,
            "task_checks": self.task_checks,
            "latency": self.latency,
            "cold_start": self.cold_start,
            "failures": self.failures,
            "provenance": self.provenance,
            "references": self.references,
            "goldens": self.goldens,
            "noise_floor": self.noise_floor,
            "cross_device": self.cross_device,
            "consumer": self.consumer,
            "environment": self.environment,
        }


def _consumer(declared: Any) -> dict[str, Any]:
    if declared is None or getattr(declared, "loads", None) is None:
        return {}
    return {"loads": bool(declared.loads), "reason": declared.reason}


def consumer_refused(report: dict[str, Any]) -> bool:
    """The report's recipe declares that inference-models cannot load its packages."""
    return (report.get("consumer") or {}).get("loads") is False


def verdict(report: dict[str, Any]) -> str:
    """``PASSED``, ``FAILED``, or (checks passed, the recipe declaring the consumer cannot load the
    packages) ``checks passed; inference-models cannot load this package``: never a bare PASSED then."""
    if not report["passed"]:
        return "FAILED"
    return f"checks passed; {CANNOT_LOAD}" if consumer_refused(report) else "PASSED"


def _shape(input_shape: str | None) -> dict[str, str]:
    """``{"input_shape": label}`` for rows of a shape set; nothing otherwise (rows stay as they were)."""
    return {"input_shape": input_shape} if input_shape else {}
