"""The report: ``report.json`` (the contract other tools read) and ``report.md`` (for people and CI).

Schema ``weightpack.report/v1`` is documented in the README. Latency entries keep every raw sample
(``samples_ms``) so later comparisons can run statistics on the pooled samples, not on summaries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bench.latency import LatencyResult, summarize
from bench.parity import RULE, OutputParity

SCHEMA = "weightpack.report/v1"


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

    def fail(self, stage: str, variant: str, backend: str | None, device: str | None, message: str) -> None:
        self.failures.append(
            {"stage": stage, "variant": variant, "backend": backend, "device": device, "message": message}
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

    def add_parity(self, variant: str, backend: str, device: str, result: OutputParity) -> None:
        self.parity.append(
            {"variant": variant, "backend": backend, "device": device, "rule": RULE, **result.to_dict()}
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
    ) -> None:
        self.task_checks.append(
            {
                "variant": variant,
                "backend": backend,
                "device": device,
                "check": check,
                "output": output,
                "value": value,
                "threshold": threshold,
                "passed": bool(passed),
            }
        )

    def add_latency(
        self, variant: str, backend: str, device: str, batch_size: int, result: LatencyResult
    ) -> None:
        stats = summarize(result.samples_ms, batch_size)
        self.latency.append(
            {
                "variant": variant,
                "backend": backend,
                "device": device,
                "batch_size": batch_size,
                **stats,
                "warmup_iters": result.warmup_iters,
                "total_s": result.total_s,
                "timer": "host wall clock (perf_counter_ns) around infer + synchronize",
                "samples_ms": [round(s, 6) for s in result.samples_ms],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
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


def render_markdown(report: dict[str, Any]) -> str:
    """A readable summary of ``report.json``: verdict, packages, parity, latency, cold start, environment."""
    verdict = "PASSED" if report["passed"] else "FAILED"
    out = [
        f"# weightpack report: {report['family']} — {verdict}",
        "",
        f"Architecture `{report['architecture']}`, task `{report['task']}`, created {report['created_at']}.",
        "",
    ]
    if report["failures"]:
        out += ["## Failures", ""]
        out += [
            f"- **{f['stage']}** {f['variant']}/{f['backend'] or '-'} on {f['device'] or '-'}: {f['message']}"
            for f in report["failures"]
        ]
        out.append("")
    out += ["## Packages", ""]
    out += _table(
        ["variant", "backend", "zip", "size (MB)", "files", "sha256", "reused"],
        [
            [
                p["variant"],
                p["backend"],
                f"`{p['zip']}`",
                p["size"] / 1e6,
                len(p["files"]),
                f"`{p['sha256'][:16]}…`",
                p["reused"],
            ]
            for p in report["packages"]
        ],
    )
    rule = report["parity"][0]["rule"] if report["parity"] else ""
    out += ["", "## Parity against the upstream reference", "", f"Rule: `{rule}`.", ""]
    out += _table(
        ["variant", "backend", "device", "output", "max abs", "max rel", "cosine", "atol", "rtol", "passed"],
        [
            [
                p["variant"],
                p["backend"],
                p["device"],
                p["output"],
                p["max_abs"],
                p["max_rel"],
                p["cosine"],
                p["atol"],
                p["rtol"],
                p["passed"],
            ]
            for p in report["parity"]
        ],
    )
    if report["task_checks"]:
        out += ["", "Task checks:", ""]
        out += _table(
            ["variant", "backend", "device", "check", "output", "value", "threshold", "passed"],
            [
                [
                    c["variant"],
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
    out += ["", "## Latency (ms, pooled raw samples)", ""]
    out += _table(
        ["variant", "backend", "device", "batch", "p50", "p90", "p99", "mean", "CoV", "stable", "n"],
        [
            [
                r["variant"],
                r["backend"],
                r["device"],
                r["batch_size"],
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
                r["mean_ms"],
                r["cov"],
                r["stable"],
                r["iterations"],
            ]
            for r in report["latency"]
        ],
    )
    out += ["", "## Cold start (unzip + from_pretrained + first inference, s)", ""]
    out += _table(
        ["variant", "backend", "device", "extract", "load", "first inference", "total"],
        [
            [
                c["variant"],
                c["backend"],
                c["device"],
                c["extract_s"],
                c["load_s"],
                c["first_inference_s"],
                c["total_s"],
            ]
            for c in report["cold_start"]
        ],
    )
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    gpu = "; ".join(
        f"{d['name']} (CC {d['compute_capability']})" for d in (env.get("cuda") or {}).get("devices", [])
    )
    out += [
        "",
        "## Environment",
        "",
        f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} threads)",
        f"- GPU: {gpu or 'none'}",
        f"- Python {env.get('python')} on {env.get('platform')}",
        f"- {libs}",
        "",
    ]
    return "\n".join(out)
