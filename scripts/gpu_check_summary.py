"""Render scripts/gpu_check.py's step results as ``summary.json`` and ``summary.md`` (the text that becomes
docs/gpu-results.md after a GPU session): environment, step statuses with the reasons for every skip,
parity, CPU-vs-CUDA parity, latency, the timer comparison, cold start and memory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return re.sub(r"[|\n]", " ", str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _mib(value: Any) -> str | None:
    return None if value is None else f"{value / 2**20:.1f} MiB"


def write_summary(out: Path, steps: list[dict[str, Any]], facts: dict[str, Any], dry_run: bool) -> int:
    """Write both files, print the Markdown, return the exit status (0 when no step failed)."""
    failed = [s["step"] for s in steps if s["status"] == "failed"]
    skipped = [s for s in steps if s["status"] == "skipped"]
    summary = {"passed": not failed, "dry_run": dry_run, "facts": facts, "steps": steps}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    lines = [
        "# GPU check" + (" (CPU dry run)" if dry_run else ""),
        "",
        f"passed: **{not failed}**" + (f" (failed: {', '.join(failed)})" if failed else ""),
        "",
        f"- date: {facts.get('date')}",
        f"- GPU: {', '.join(facts.get('gpus') or []) or 'none'}; driver {facts.get('driver')}",
        f"- torch {facts.get('torch')} (CUDA {facts.get('torch_cuda')}), Python {facts.get('python')}",
        f"- onnxruntime {facts.get('onnxruntime')} providers {facts.get('ort_providers')}; "
        f"TensorRT installed: {facts.get('tensorrt')}",
        "",
        "## Steps",
        "",
        *_table(
            ["step", "status", "s", "reason"],
            [[s["step"], s["status"], s["seconds"], s.get("reason")] for s in steps],
        ),
    ]
    if skipped:
        lines += [
            "Skipped, with reasons: " + "; ".join(f"{s['step']}: {s.get('reason')}" for s in skipped),
            "",
        ]
    packs = [s for s in steps if s["step"].startswith(("pack-", "ort-", "tensorrt")) and s.get("data")]
    parity = [
        [p["package"], p["device"], p["max_abs"], p["passed"]] for s in packs for p in s["data"]["parity"]
    ]
    lines += ["## Parity against the fp32 CPU reference (worst max abs)", ""]
    lines += _table(["package", "device", "max abs", "passed"], parity)
    cross = [[p["package"], p["devices"], p["max_abs"]] for s in packs for p in s["data"]["cross_device"]]
    lines += [
        "## The same package on CPU and CUDA (max abs)",
        "",
        *_table(["package", "devices", "max abs"], cross),
    ]
    latency = [
        [r["package"], r["device"], r["batch"], r["p50_ms"], r["device_p50_ms"], r["throttled"],
         _mib(r["mem_peak_delta"])]
        for s in packs
        for r in s["data"]["latency"]
    ]  # fmt: skip
    lines += ["## Latency (ms)", ""]
    lines += _table(
        ["package", "device", "batch", "host p50", "device p50", "throttled", "device mem peak"], latency
    )
    cold = [
        [r["package"], r["device"], r["load_s"], r["first_inference_s"], _mib(r["cuda_device_delta_bytes"]),
         _mib(r["cuda_peak_allocated_bytes"])]
        for s in packs
        for r in s["data"]["cold_start"]
    ]  # fmt: skip
    lines += ["## Cold start and CUDA memory", ""]
    lines += _table(["package", "device", "load s", "first inference s", "device delta", "torch peak"], cold)
    timers = next((s for s in steps if s["step"] == "timers" and s.get("data")), None)
    if timers:
        data = timers["data"]
        lines += [f"## Timer comparison ({data.get('module')}, {data.get('device')}; tolerance 3 %)", ""]
        rows = [
            [name, p["harness_ms"], p["independent_ms"], p["ratio"], p["within"]]
            for name, p in data["pairs"].items()
        ]
        lines += _table(["pair", "harness median ms", "independent median ms", "ratio", "within"], rows)
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return 0 if not failed else 1
