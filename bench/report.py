"""The report: ``report.json`` (the contract other tools read) and ``report.md`` (for people and CI).

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

from bench.attempts import by_package
from bench.latency import LatencyResult, ci_half_width, summarize
from bench.parity import RULE, OutputParity

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

    @classmethod
    def start(cls, recipe: Any, environment: dict[str, Any], meta: dict[str, Any] | None = None) -> Report:
        return cls(
            family=recipe.family,
            architecture=recipe.architecture,
            task=recipe.task,
            recipe=str(recipe.path),
            environment=environment,
            meta=dict(meta or {}),
        )

    @property
    def passed(self) -> bool:
        """True only when something was checked and nothing failed."""
        checked = bool(self.parity)
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
    ) -> None:
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
            "memory": memory or {},
            "gpu_conditions": result.gpu_conditions,
            "throttled": bool(result.gpu_conditions and result.gpu_conditions.get("throttled")),
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
            "environment": self.environment,
        }


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (no pipe ends the cell, no newline ends the row)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ci(entry: dict[str, Any]) -> str:
    ci = entry.get("p50_ci95_ms")
    return f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "-"


def _mb(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def render_markdown(report: dict[str, Any], plot: str | None = None) -> str:
    """A readable summary of ``report.json``: verdict, packages, parity, latency, cold start, environment.

    Reads v1 and v2 reports (keys added in v2 are optional here)."""
    verdict = "PASSED" if report["passed"] else "FAILED"
    out = [
        f"# weightpack report: {report['family']} — {verdict}",
        "",
        f"Architecture `{report['architecture']}`, task `{report['task']}`, created {report['created_at']}, "
        f"schema `{report.get('schema')}`.",
        "",
    ]
    if report["failures"]:
        out += ["## Failures", ""]
        out += [
            f"- **{f['stage']}** {f['variant']}/{f['backend'] or '-'} on {f['device'] or '-'}: {f['message']}"
            for f in report["failures"]
        ]
        out.append("")
    warnings = (report.get("environment") or {}).get("warnings") or []
    if warnings:
        out += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    out += ["## Packages", "", "Every package attempted; a failed one with its reason.", ""]
    built = {(p["variant"], p["backend"]): p for p in report["packages"]}
    rows = []
    for attempt in by_package(report):
        p = built.get((attempt.variant, attempt.backend))
        rows.append(
            [
                attempt.variant,
                attempt.backend,
                f"`{p['zip']}`" if p else "-",
                p["size"] / 1e6 if p else None,
                len(p["files"]) if p else None,
                f"`{p['sha256'][:16]}…`" if p else "-",
                _reused_cell(p) if p else "-",  # not a failure: plain text
                "passed" if attempt.passed else f"**FAILED**: {_md_cell(attempt.reason)}",
            ]
        )
    out += _table(["variant", "backend", "zip", "size (MB)", "files", "sha256", "reused", "result"], rows)
    rule = report["parity"][0]["rule"] if report["parity"] else ""
    out += ["", "## Parity against the upstream reference", "", f"Rule: `{rule}`.", ""]
    out += _table(
        [
            "variant",
            "backend",
            "device",
            "output",
            "shape",
            "dtype",
            "max abs",
            "mean abs",
            "max rel",
            "worst at",
            "outside",
            "cosine",
            "atol",
            "rtol",
            "min atol",
            "passed",
            "reason",
        ],
        [
            [
                at_shape(p),
                p["backend"],
                p["device"],
                f"`{p['output']}`",
                "×".join(map(str, p["shape"])) or "-",
                p["dtype"] or "-",
                p["max_abs"],
                p.get("mean_abs"),
                p["max_rel"],
                p.get("worst_index"),
                outside(p),
                p["cosine"],
                p["atol"],
                p["rtol"],
                p.get("min_atol"),
                p["passed"],
                p.get("reason", ""),
            ]
            for p in report["parity"]
        ],
    )
    if report.get("noise_floor"):
        out += [
            "",
            "Measured noise floor (reference fp32 vs fp64); derived tolerances apply where the recipe sets "
            "no per-output override:",
            "",
        ]
        rows = []
        for variant, nf in report["noise_floor"].items():
            for name, f in (nf.get("outputs") or {}).items():
                rows.append(
                    [variant, f"`{name}`", f["max_abs"], f["mean_abs"], f["max_rel"], f["factor"], f["atol"]]
                )
            if nf.get("error"):
                rows.append([variant, "-", None, None, None, None, nf["error"]])
        out += _table(["variant", "output", "max abs", "mean abs", "max rel", "factor", "derived atol"], rows)
    if report["task_checks"]:
        out += ["", "Task checks:", ""]
        out += _table(
            ["variant", "backend", "device", "check", "output", "value", "threshold", "passed"],
            [
                [
                    at_shape(c),
                    c["backend"],
                    c["device"],
                    c["check"],
                    c["output"],
                    c["value"],
                    c["threshold"],
                    c["passed"],
                ]
                for c in report["task_checks"]
            ],
        )
    if report.get("cross_device"):
        out += ["", "Same package across devices (reported, not gated):", ""]
        out += _table(
            ["variant", "backend", "devices", "output", "max abs", "max rel", "cosine", "within tolerance"],
            [
                [
                    c["variant"],
                    c["backend"],
                    " vs ".join(c["devices"]),
                    f"`{c['output']}`",
                    c["max_abs"],
                    c["max_rel"],
                    c["cosine"],
                    c["passed"],
                ]
                for c in report["cross_device"]
            ],
        )
    out += ["", "## Latency (ms, pooled raw samples; host wall time unless marked device)", ""]
    out += _table(
        [
            "variant",
            "backend",
            "device",
            "batch",
            "p50",
            "p50 95% CI",
            "p90",
            "p95",
            "p99",
            "mean",
            "std",
            "CoV",
            "stable",
            "items/s",
            "device p50",
            "overhead (µs)",
            "n",
            "stopped by",
        ],
        [
            [
                at_shape(r),
                r["backend"],
                r["device"],
                r["batch_size"],
                _ms(r["p50_ms"]),
                _ci(r),
                _ms(r["p90_ms"]),
                _ms(r.get("p95_ms")),
                _ms(r["p99_ms"]),
                _ms(r["mean_ms"]),
                _ms(r.get("std_ms")),
                f"{r['cov']:.2%}",
                f"{r['stable']} (throttled: {', '.join(r['gpu_conditions']['throttle_reasons'])})"
                if r.get("throttled")
                else r["stable"],
                f"{r.get('throughput_per_s', 0):.1f}",
                _ms((r.get("device_time") or {}).get("p50_ms")),
                None if r.get("harness_overhead_ns") is None else f"{r['harness_overhead_ns'] / 1e3:.2f}",
                r["iterations"],
                r.get("stopped_by", "-"),
            ]
            for r in report["latency"]
        ],
    )
    timers = sorted({r.get("device_timer") for r in report["latency"] if r.get("device_timer")})
    if report["latency"]:
        out += ["", f"Host timer: {report['latency'][0].get('timer', '-')}."]
        if timers:
            out += [f"Device timer: {'; '.join(timers)}."]
    if plot:
        out += ["", f"![latency distributions]({plot})"]
    out += ["", "## Cold start (unzip + from_pretrained + first inference, s) and memory", ""]
    out += _table(
        [
            "variant",
            "backend",
            "device",
            "extract",
            "load",
            "first inference",
            "total",
            "RSS Δ (MiB)",
            "peak RSS (MiB)",
            "CUDA peak alloc (MiB)",
            "CUDA peak reserved (MiB)",
        ],
        [
            [
                c["variant"],
                c["backend"],
                c["device"],
                c["extract_s"],
                c["load_s"],
                c["first_inference_s"],
                c["total_s"],
                _mb(c.get("rss_delta_bytes")),
                _mb(c.get("peak_rss_bytes")),
                _mb(c.get("cuda_peak_allocated_bytes")),
                _mb(c.get("cuda_peak_reserved_bytes")),
            ]
            for c in report["cold_start"]
        ],
    )
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    cuda = env.get("cuda") or {}
    gpu = "; ".join(f"{d['name']} (CC {d['compute_capability']})" for d in cuda.get("devices", []))
    out += [
        "",
        "## Environment",
        "",
        f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} threads, {env.get('cpu_affinity', '-')} usable; "
        f"torch {env.get('torch_threads')} intra-op / {env.get('torch_interop_threads', '-')} inter-op)",
        f"- GPU: {gpu or 'none'}",
    ]
    if cuda:
        out.append(
            f"- CUDA {cuda.get('cuda_version')}, cuDNN {cuda.get('cudnn_version')}, driver "
            f"{cuda.get('driver_version')}, TensorRT {env.get('tensorrt_version') or '-'}"
        )
    for when in ("nvml_before", "nvml_after"):
        for g in env.get(when) or []:
            clocks = g.get("clocks") or {}
            out.append(
                f"- GPU {g['index']} {when.split('_')[1]}: "
                f"SM {clocks.get('sm_mhz')}/{clocks.get('sm_max_mhz')} MHz, mem {clocks.get('mem_mhz')} MHz, "
                f"{g.get('temperature_c')} °C, {g.get('power_w')} W, "
                f"throttle: {', '.join(g.get('throttle_reasons') or []) or 'none'}"
            )
    out += [f"- Python {env.get('python')} on {env.get('platform')}", f"- {libs}", ""]
    return "\n".join(out)


def _reused_cell(package: dict[str, Any]) -> str:
    """What a re-run took from an earlier one: the zip, and each device's checks with when they ran."""
    parts = ["zip"] if package.get("reused") else []
    for device, v in (package.get("verification") or {}).items():
        if v.get("reused_from"):
            parts.append(f"checks on {device} from {v['reused_from']}")
    return "; ".join(parts) or "no"


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["variant"], entry["backend"], entry["device"], entry["batch_size"])


def render_comparison(reports: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """Reports side by side as Markdown: verdicts and environments, then per (variant, backend, device,
    batch) the p50 with its 95 % CI and p99 of each report, and each p50 as a ratio of the first's.
    A ratio is marked ``*`` when the two 95 % CIs of the median do not overlap."""
    labels = labels or [f"R{i + 1}" for i in range(len(reports))]
    out = ["# weightpack reports side by side", ""]
    out += _table(
        ["", "family", "created", "schema", "passed", "CPU", "GPU", "torch", "onnxruntime"],
        [
            [
                label,
                r["family"],
                r["created_at"],
                r.get("schema"),
                r["passed"],
                r["environment"].get("cpu"),
                "; ".join(d["name"] for d in ((r["environment"].get("cuda") or {}).get("devices") or []))
                or "none",
                r["environment"].get("libraries", {}).get("torch"),
                r["environment"].get("libraries", {}).get("onnxruntime"),
            ]
            for label, r in zip(labels, reports, strict=True)
        ],
    )
    keys: list[tuple[Any, ...]] = []
    for r in reports:
        for e in r["latency"]:
            if _key(e) not in keys:
                keys.append(_key(e))
    headers = ["variant", "backend", "device", "batch"]
    for i, label in enumerate(labels):
        headers += [f"{label} p50", f"{label} 95% CI", f"{label} p99"]
        if i:
            headers.append(f"{label}/{labels[0]}")
    rows = []
    for key in keys:
        row: list[Any] = list(key)
        base = next((e for e in reports[0]["latency"] if _key(e) == key), None)
        for i, r in enumerate(reports):
            e = next((x for x in r["latency"] if _key(x) == key), None)
            row += [_ms(e and e["p50_ms"]), _ci(e) if e else "-", _ms(e and e["p99_ms"])]
            if i:
                if e and base:
                    ratio = f"{e['p50_ms'] / base['p50_ms']:.3f}"
                    a, b = e.get("p50_ci95_ms"), base.get("p50_ci95_ms")
                    if a and b and (a[0] > b[1] or b[0] > a[1]):
                        ratio += "*"
                    row.append(ratio)
                else:
                    row.append("-")
        rows.append(row)
    out += ["", "## Latency (ms, host)", ""]
    out += _table(headers, rows)
    out += ["", "`*`: the 95 % CIs of the two medians do not overlap.", ""]
    pkeys: list[tuple[Any, ...]] = []
    for r in reports:
        for p in r["parity"]:
            k = (p["variant"], p["backend"], p["device"], p["output"])
            if k not in pkeys:
                pkeys.append(k)
    prow = []
    for k in pkeys:
        row = [*k[:3], f"`{k[3]}`"]
        for r in reports:
            p = next(
                (x for x in r["parity"] if (x["variant"], x["backend"], x["device"], x["output"]) == k), None
            )
            row += [p["max_abs"] if p else None, p["passed"] if p else None]
        prow.append(row)
    out += ["## Parity (max abs error, passed)", ""]
    out += _table(
        [
            "variant",
            "backend",
            "device",
            "output",
            *[h for lb in labels for h in (f"{lb} max abs", f"{lb} ok")],
        ],
        prow,
    )
    out.append("")
    return "\n".join(out)


def _shape(input_shape: str | None) -> dict[str, str]:
    """``{"input_shape": label}`` for rows of a shape set; nothing otherwise (rows stay as they were)."""
    return {"input_shape": input_shape} if input_shape else {}


def at_shape(row: dict[str, Any]) -> str:
    """The variant, and the shape of its shape set a row is at (``v1 @ image 3x240x320``)."""
    return f"{row['variant']} @ {row['input_shape']}" if row.get("input_shape") else row["variant"]


def outside(p: dict[str, Any]) -> str | None:
    """Elements outside tolerance as a count and a fraction (a few in a million never reads 0.00 %)."""
    if p.get("frac_outside") is None:
        return None
    if p.get("outside") is None:
        return f"{p['frac_outside']:.3g}"
    return f"{p['outside']} ({p['frac_outside']:.3g})"
