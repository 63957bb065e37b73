"""The CPU dry run of scripts/gpu_check.sh: the very script a GPU session runs, on the CPU with small
budgets, so a lent GPU's minutes are never spent discovering that the check itself is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.hermetic import child_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402  (scripts/, beside gpu_check.sh)
import gpu_check_carry  # noqa: E402
import gpu_check_summary  # noqa: E402
from gpu_check_summary import write_summary  # noqa: E402

while str(ROOT / "scripts") in sys.path:  # the scripts folder is no package: off the path again
    sys.path.remove(str(ROOT / "scripts"))
STEPS = [
    "ort-wheel",
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
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()  # the script's TMPDIR, watched for what it leaves
    env = child_env({"OUT": str(out), "PYTHON": sys.executable}, tmpdir=tmp)
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
    assert "TensorRT" in steps["tensorrt"]["reason"] or "tensorrt" in steps["tensorrt"]["reason"]
    assert "onnxruntime-gpu" in steps["ort-gpu"]["reason"]
    assert steps["ort-wheel"]["status"] == "skipped" and steps["ort-wheel"]["reason"]
    pairs = steps["timers"]["data"]["pairs"]
    assert pairs["host: harness vs torch.utils.benchmark"]["ratio"] is not None
    assert pairs["device: harness events vs bare CUDA-event loop"]["ratio"] is None  # no CUDA here
    md = (out / "summary.md").read_text()
    assert (
        "# GPU check (CPU dry run)" in md and "Skipped, with reasons:" in md and "| onet/torch | cpu |" in md
    )
    # what comes back from the device: at most 8 files, here exactly these three, nothing in folders
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        gpu_check_summary.OUT_FILES
    )
    assert len(gpu_check_summary.OUT_FILES) <= gpu_check_summary.DEVICE_MAX_FILES == 8
    with tarfile.open(out / "details.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"env.json", "junit.xml", "nightly.xml", "pack-mtcnn-report.json", "nvidia-smi.txt"} <= names
    assert {"cuda-tests.log", "pack-mtcnn.log", "nightly.log", "env.log", "timers.log"} <= names
    assert summary["complete"] is True and summary["facts"]["check_process_imported_torch"] is False
    assert list(tmp.glob("weightpack-gpu-check-*")) == []  # no temporary left


def test_summary_marks_failures_and_skips(tmp_path: Path) -> None:
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


def test_a_step_out_of_time_is_not_run_and_fails_the_check(tmp_path: Path) -> None:
    """Main recorded a step the budget left no time for as "skipped", which counted as passed."""
    check = gpu_check.Check(tmp_path / "out", tmp_path / "details", dry_run=True, budget_s=0.0)
    ran = []
    try:
        step = check.step("nightly", lambda seconds: ran.append(seconds) or {"status": "passed"}, 30.0)
    finally:
        check.close()
    assert ran == [] and step["status"] == "not run"
    assert step["reason"].startswith("time budget spent: 0 s left of the 0 s budget")
    assert (
        write_summary(tmp_path, [{"step": "env", "status": "passed", "seconds": 1.0}, step], {}, False) == 1
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] is False and summary["not_run"] == ["nightly"]
    md = (tmp_path / "summary.md").read_text()
    assert (
        "passed: **False** (not run: nightly)" in md
        and "Not run, with reasons: nightly: time budget spent: 0 s left" in md
    )


def test_the_time_of_a_skipped_step_goes_to_the_steps_that_run() -> None:
    """onnxruntime-gpu not carried: its 50 s are shared among the steps that run, not left idle."""
    shares = gpu_check.share(["cuda-tests", "timers"], 180.0)
    assert shares == {"cuda-tests": 140.0, "timers": 40.0}
    assert sum(gpu_check.share(list(gpu_check.CAPS), 285.0).values()) == pytest.approx(285.0)
    assert gpu_check.share([], 100.0) == {}


def test_a_step_gets_its_cap_or_what_is_left_and_never_less_than_its_minimum() -> None:
    assert gpu_check.time_for(60.0, 200.0) == 60.0
    assert gpu_check.time_for(60.0, 25.0) == 25.0
    assert gpu_check.time_for(60.0, gpu_check.MIN_STEP_S - 1) is None  # not started: "not run"


def test_the_step_caps_fit_the_budget_and_the_budget_fits_the_lease() -> None:
    """Main's caps added up to about 630 s against a 450 s budget: the last steps were squeezed out.
    Now every step gets its full cap, one run ends well inside 8 minutes, and the whole procedure (start,
    the carry calls of onnxruntime-gpu, the check) fits the 15-minute lease with room to spare."""
    for budget in (gpu_check.DEFAULT_BUDGET_S, 400.0):
        caps = gpu_check.step_caps(budget)
        assert set(caps) == set(gpu_check.CAPS)
        assert sum(caps.values()) + gpu_check.FINISH_RESERVE_S <= budget + 1e-9
    assert gpu_check.DEFAULT_BUDGET_S + gpu_check.SHELL_OVERHEAD_S <= gpu_check.DEVICE_TIMEOUT_S <= 8 * 60
    one_go = gpu_check.STARTUP_ALLOWANCE_S + gpu_check.CARRY_CALLS * gpu_check.CARRY_CALL_S
    assert one_go + gpu_check.DEVICE_TIMEOUT_S <= gpu_check.LEASE_S - 240  # 4 minutes left to fix and rerun
    # the carry calls counted above are enough for the 1.31.1 wheel beside this tree (it grows with each
    # commit: gpu_wheels.sh splits by the tree it finds, and the lease holds CARRY_CALLS calls)
    tree = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file() and _travels(p))
    parts = gpu_check_carry.part_plan(gpu_check.ORT_GPU_WHEEL_BYTES, tree)
    assert len(parts) <= gpu_check.CARRY_CALLS and max(parts) + tree < gpu_check_carry.CALL_LIMIT_BYTES
    # the documented device call uses that timeout
    call = f"timeout_s={gpu_check.DEVICE_TIMEOUT_S}"
    for doc in ("docs/gpu-results.md", "scripts/gpu_wheels.sh", "scripts/gpu_check.sh"):
        assert call in (ROOT / doc).read_text(), doc
        assert ".gpu-carry/ort-gpu.1" in (ROOT / doc).read_text(), doc  # the carry calls are documented


def _travels(path: Path) -> bool:
    """Roughly what a device call sends: the tree without the ignored folders."""
    parts = path.relative_to(ROOT).parts
    ignored = {".git", ".whl", ".gpu-carry", "out", ".venv", ".venv-consumer", "__pycache__"}
    return not (set(parts) & ignored) and not any(p.endswith((".egg-info", "_cache")) for p in parts)


# ---- onnxruntime-gpu in parts (issue 24, point 1) --------------------------------------------------------


def test_a_wheel_is_split_into_parts_that_each_fit_a_call() -> None:
    """Main left onnxruntime-gpu out ("exceeds the 64 MiB carry"): the check could not reach CUDA EP."""
    tree = 1_600_000
    parts = gpu_check_carry.part_plan(gpu_check.ORT_GPU_WHEEL_BYTES, tree)
    assert len(parts) == 4 and sum(parts) == gpu_check.ORT_GPU_WHEEL_BYTES
    assert max(parts) - min(parts) <= 1 and max(parts) + tree + 2**20 <= 64 * 2**20
    assert gpu_check_carry.part_plan(10, 0) == [10]
    with pytest.raises(ValueError, match="leaves no room"):
        gpu_check_carry.part_plan(10, 64 * 2**20)


def test_parts_are_reassembled_or_the_missing_one_is_named(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(3000))
    carry = tmp_path / "carry"
    manifest = gpu_check_carry.split(wheel, carry, tree_bytes=0, limit=1200, margin=0)
    assert [p["name"] for p in manifest["parts"]] == ["ort-gpu.1", "ort-gpu.2", "ort-gpu.3"]
    assert gpu_check_carry.read_manifest(carry) == manifest
    rebuilt = gpu_check_carry.assemble(manifest, carry, tmp_path / "out")
    assert rebuilt.read_bytes() == wheel.read_bytes()
    (carry / "ort-gpu.2").unlink()
    data = bytearray((carry / "ort-gpu.3").read_bytes())
    data[0] ^= 0xFF
    (carry / "ort-gpu.3").write_bytes(bytes(data))
    present, problems = gpu_check_carry.part_status(manifest, carry)
    assert present == [1]
    assert problems == [
        "part 2 of 3 (ort-gpu.2) was not carried",
        "part 3 of 3 is damaged: its sha256 differs (carry it again)",
    ]
    with pytest.raises(ValueError, match=r"part 2 of 3 \(ort-gpu\.2\) was not carried"):
        gpu_check_carry.assemble(manifest, carry, tmp_path / "out2")


def test_the_ort_wheel_step_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the box: no parts prepared is a skip with its reason; a part missing is "not run" (the check
    fails, naming the part); all there are reassembled and installed into the site folder."""
    carry = tmp_path / "carry"
    monkeypatch.setattr(gpu_check_carry, "CARRY_DIR", carry)
    check = gpu_check.Check(tmp_path / "out", tmp_path / "details", dry_run=False, budget_s=60.0)
    try:
        skipped = gpu_check.ort_wheel_step(check, 30.0)
        assert skipped["status"] == "skipped" and "run scripts/gpu_wheels.sh" in skipped["reason"]
        wheel = tmp_path / "demo-1.0-py3-none-any.whl"
        wheel.write_bytes(os.urandom(2000))
        gpu_check_carry.split(wheel, carry, tree_bytes=0, limit=1200, margin=0)
        (carry / "ort-gpu.2").unlink()
        missing = gpu_check.ort_wheel_step(check, 30.0)
        assert (
            missing["status"] == "not run" and "part 2 of 2 (ort-gpu.2) was not carried" in missing["reason"]
        )
    finally:
        check.close()


def test_the_ort_gpu_step_runs_skips_or_fails_from_the_probe() -> None:
    decide = gpu_check.ort_gpu_decision
    assert decide(
        {"ort_cuda_probe": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}}, False
    ) == (
        "run",
        None,
    )
    verdict, why = decide({"ort_cuda_probe": {"error": "CUDAExecutionProvider is listed ... Fix: x"}}, False)
    assert verdict == "fail" and "Fix: x" in str(why)  # carried but not loading is a failure, not a skip
    verdict, why = decide(
        {"ort_wheel": "onnxruntime-gpu was not carried (no .gpu-carry/ort-gpu.json)"}, False
    )
    assert verdict == "skip" and "not carried" in str(why)
    assert decide({}, True)[0] == "skip"
    note = "TensorRT is not carried: tensorrt-cu13-libs has no wheel on PyPI"
    assert gpu_check.tensorrt_skip({}, False, note) == note
    assert gpu_check.tensorrt_skip({"tensorrt": True}, False, note) is None


def test_a_child_step_that_outruns_its_cap_is_stopped_with_its_children(tmp_path: Path) -> None:
    """A step killed at its cap takes its whole process group along (a pack's --jobs workers too)."""
    check = gpu_check.Check(tmp_path / "out", tmp_path / "details", dry_run=True, budget_s=60.0)
    pid_file = tmp_path / "child.pid"
    try:
        rc = check.run("sleeper", ["bash", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], 1.0)
    finally:
        check.close()
    assert rc == 124
    assert "stopped at its cap of 1 s" in (tmp_path / "details" / "sleeper.log").read_text()
    status = Path(f"/proc/{pid_file.read_text().strip()}/status")
    for _ in range(50):  # the grandchild is gone (or a zombie waiting for its reaper)
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text(), "the step's child outlived its cap"


def test_details_archive_keeps_every_file_under_the_device_limit(tmp_path: Path) -> None:
    """Everything but the summary goes in one archive; a huge log keeps its tail within the size limit."""
    details = tmp_path / "details"
    details.mkdir()
    (details / "env.json").write_text("{}")
    (details / "huge.log").write_bytes(os.urandom(20 * 2**20) + b"THE END\n")
    dest = tmp_path / "details.tar.gz"
    gpu_check_summary.bundle_details(details, dest)
    assert dest.stat().st_size <= gpu_check_summary.DEVICE_MAX_FILE_BYTES
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["env.json", "huge.log"]
        log = tar.extractfile("huge.log").read()
    assert log.startswith(b"[gpu-check] the first ") and log.endswith(b"THE END\n")


def test_a_budget_too_small_for_any_step_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        gpu_check.main(["--dry-run", "--budget-s", "5"])
    assert info.value.code == 2
    assert "--budget-s 5 leaves no step time (accepted: at least 25 s)" in capsys.readouterr().err
