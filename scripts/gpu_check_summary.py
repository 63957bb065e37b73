"""Render scripts/gpu_check.py's step results as ``summary.json`` and ``summary.md`` (the text that becomes
docs/gpu-results.md after a GPU session): environment, step statuses with the reasons for every skip and
every step not run, parity, CPU-vs-CUDA parity, latency, the timer comparison, cold start and memory; and
pack everything else into one ``details.tar.gz``: the device returns at most 8 files from $OUT."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

OUT_FILES = ("summary.md", "summary.json", "details.tar.gz")
"""Everything the check writes to $OUT: the device returns at most DEVICE_MAX_FILES files, each at most
DEVICE_MAX_FILE_BYTES, no more than 2 folders down; a 13-file layout lost some of them."""
DEVICE_MAX_FILES = 8
DEVICE_MAX_FILE_BYTES = 16 * 2**20
MAX_MEMBER_BYTES = 4 * 2**20
"""A file of the details above this keeps only its last MAX_MEMBER_BYTES (a log's end says what failed),
so the archive stays under the device's 16 MiB per file."""


def bundle_details(details: Path, dest: Path, max_member_bytes: int = MAX_MEMBER_BYTES) -> None:
    """Write every file of ``details`` (flat, sorted) into the gzip tar ``dest``, each cut to its last
    ``max_member_bytes`` with a first line saying so; written beside and renamed, never half there."""
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(p for p in details.iterdir() if p.is_file()):
            data = path.read_bytes()
            if len(data) > max_member_bytes:
                note = f"[gpu-check] the first {len(data) - max_member_bytes} bytes were cut\n".encode()
                data = note + data[-max_member_bytes:]
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime = len(data), int(path.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(dest)


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


def digest_report(report: dict[str, Any]) -> dict[str, Any]:
    """The rows the summary shows: worst parity per package and device, CPU-vs-CUDA parity, latency,
    cold start and memory."""
    worst: dict[tuple, dict] = {}
    for p in report.get("parity", []):
        key = (p["variant"], p["backend"], p["device"])
        row = worst.setdefault(key, {"max_abs": 0.0, "passed": True})
        row["max_abs"] = max(row["max_abs"], float(p.get("max_abs") or 0.0))
        row["passed"] = row["passed"] and bool(p.get("passed"))
    cross: dict[tuple, float] = {}
    for p in report.get("cross_device", []):
        key = (p["variant"], p["backend"], "/".join(p["devices"]))
        cross[key] = max(cross.get(key, 0.0), float(p.get("max_abs") or 0.0))
    latency = [
        {
            "package": f"{r['variant']}/{r['backend']}", "device": r["device"], "batch": r["batch_size"],
            "p50_ms": r["p50_ms"], "device_p50_ms": (r.get("device_time") or {}).get("p50_ms"),
            "throttled": r.get("throttled", False),
            "mem_peak_delta": ((r.get("gpu_conditions") or {}).get("memory_device_peak_delta_bytes")),
            "mem_process_peak": ((r.get("gpu_conditions") or {}).get("memory_process_peak_bytes")),
        }
        for r in report.get("latency", [])
    ]  # fmt: skip
    cold = [
        {
            "package": f"{r['variant']}/{r['backend']}", "device": r["device"], "load_s": r.get("load_s"),
            "first_inference_s": r.get("first_inference_s"),
            "cuda_device_delta_bytes": r.get("cuda_device_delta_bytes"),
            "cuda_peak_allocated_bytes": r.get("cuda_peak_allocated_bytes"),
        }
        for r in report.get("cold_start", [])
    ]  # fmt: skip
    return {
        "passed": report.get("passed"),
        "parity": [{"package": f"{k[0]}/{k[1]}", "device": k[2], **v} for k, v in sorted(worst.items())],
        "cross_device": [
            {"package": f"{k[0]}/{k[1]}", "devices": k[2], "max_abs": v} for k, v in cross.items()
        ],
        "latency": latency,
        "cold_start": cold,
        "failures": report.get("failures", []),
    }


def verdict(steps: list[dict[str, Any]]) -> tuple[bool, list[str], list[str]]:
    """``(passed, failed, not_run)``: the check passes only when no step failed and every step ran; a
    step the time budget left out is not a pass (main counted it as one)."""
    failed = [s["step"] for s in steps if s["status"] == "failed"]
    not_run = [s["step"] for s in steps if s["status"] == "not run"]
    return not failed and not not_run, failed, not_run


def write_summary(
    out: Path, steps: list[dict[str, Any]], facts: dict[str, Any], dry_run: bool, final: bool = True
) -> int:
    """Write both files and return the exit status (0 when the check passed, else 1); ``final``: the run
    is over (``complete`` in summary.json), print the Markdown."""
    passed, failed, not_run = verdict(steps)
    skipped = [s for s in steps if s["status"] == "skipped"]
    summary = {
        "passed": passed, "complete": final, "dry_run": dry_run, "failed": failed, "not_run": not_run,
        "facts": facts, "steps": steps,
    }  # fmt: skip
    _write(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    problems = [f"failed: {', '.join(failed)}"] if failed else []
    problems += [f"not run: {', '.join(not_run)}"] if not_run else []
    lines = [
        "# GPU check" + (" (CPU dry run)" if dry_run else "") + ("" if final else " (still running)"),
        "",
        f"passed: **{passed}**" + (f" ({'; '.join(problems)})" if problems else ""),
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
    if not_run:
        why = [s for s in steps if s["status"] == "not run"]
        lines += ["Not run, with reasons: " + "; ".join(f"{s['step']}: {s.get('reason')}" for s in why), ""]
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
    _write(out / "summary.md", text)
    if final:
        print(text)
    return 0 if passed else 1


def _write(path: Path, text: str) -> None:
    """Write beside and rename: a run stopped mid-write still leaves the previous whole file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
