"""The CPU dry run of scripts/gpu_check.sh: the very script a GPU session runs, on the CPU with small
budgets, so a lent GPU's minutes are never spent discovering that the check itself is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = [
    "env",
    "minilm",
    "cuda-tests",
    "pack-mtcnn",
    "pack-minilm",
    "timers",
    "nightly",
    "ort-gpu",
    "tensorrt",
]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_and_says_what_it_skipped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = set(Path(tempfile.gettempdir()).glob("weightpack-gpu-check-*"))
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run", "--budget-s", "400"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True and summary["dry_run"] is True
    steps = {s["step"]: s for s in summary["steps"]}
    assert list(steps) == STEPS
    assert all(s["status"] in ("passed", "skipped") for s in steps.values())
    assert all(s.get("reason") for s in steps.values() if s["status"] == "skipped")  # every skip says why
    # the fp16 carry of MiniLM went round trip (the GPU box gets it from .whl/)
    assert "fp16 carry" in steps["minilm"]["reason"]
    # the CUDA tests were collected and skipped with their reason on the CPU
    assert steps["cuda-tests"]["data"]["skipped"] > 0 and steps["cuda-tests"]["data"]["failed"] == 0
    assert any("CUDA" in r for r in steps["cuda-tests"]["data"]["skip_reasons"])
    # the pack ran and its rows reach the summary
    parity = steps["pack-mtcnn"]["data"]["parity"]
    assert parity and all(p["passed"] for p in parity)
    assert steps["nightly"]["data"]["passed"] > 0
    assert "not installed" in steps["tensorrt"]["reason"] and "onnxruntime-gpu" in steps["ort-gpu"]["reason"]
    pairs = steps["timers"]["data"]["pairs"]
    assert pairs["host: harness vs torch.utils.benchmark"]["ratio"] is not None
    assert pairs["device: harness events vs bare CUDA-event loop"]["ratio"] is None  # no CUDA here
    md = (out / "summary.md").read_text()
    assert (
        "# GPU check (CPU dry run)" in md and "Skipped, with reasons:" in md and "| onet/torch | cpu |" in md
    )
    assert set(Path(tempfile.gettempdir()).glob("weightpack-gpu-check-*")) <= before  # no temporary left


def test_summary_marks_failures_and_skips(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gpu_check_summary import write_summary
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    steps = [
        {"step": "env", "status": "passed", "seconds": 1.0},
        {"step": "timers", "status": "failed", "seconds": 2.0, "reason": "ratio 1.07", "data": {
            "module": "m", "device": "cuda:0",
            "pairs": {"host": {"harness_ms": 1.07, "independent_ms": 1.0, "ratio": 1.07, "within": False}},
        }},
        {"step": "tensorrt", "status": "skipped", "seconds": 0.0, "reason": "tensorrt is not installed"},
    ]  # fmt: skip
    assert write_summary(tmp_path, steps, {"gpus": ["NVIDIA H200"]}, dry_run=False) == 1
    md = (tmp_path / "summary.md").read_text()
    assert "passed: **False** (failed: timers)" in md and "tensorrt: tensorrt is not installed" in md
    assert "| host | 1.07 | 1 | 1.07 | False |" in md
