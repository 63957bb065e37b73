"""Re-runs reuse finished checks and reference outputs, and give the same zips and parity results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.packs import pack_process, run_pack

pytestmark = pytest.mark.slow


def parity_results(report: dict) -> list[tuple]:
    return sorted(
        (p["variant"], p["backend"], p["device"], p["output"], p["max_abs"], p["passed"])
        for p in report["parity"]
    )


def test_rerun_keeps_checks_and_reverify_redoes_them(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    first = json.loads((minilm_pack_onnx / "report.json").read_text())
    out = tmp_path / "out"
    shutil.copytree(minilm_pack_onnx, out)
    sidecar = next((out / "goldens").glob("*-reference.json"))
    reference_record = sidecar.read_text()

    again = run_pack(out, "--backends", "onnx")
    pkg = again["packages"][0]
    assert pkg["reused"] is True
    when = pkg["verification"]["cpu"]["reused_from"]
    assert parity_results(again) == parity_results(first)
    assert all(p["reused_from"] == when for p in again["parity"] + again["latency"] + again["cold_start"])
    assert [lat["samples_ms"] for lat in again["latency"]] == [lat["samples_ms"] for lat in first["latency"]]
    assert sidecar.read_text() == reference_record, "reference outputs were reused, not recomputed"
    assert "checks on cpu from" in (out / "report.md").read_text()

    redone = run_pack(out, "--backends", "onnx", "--reverify", "--no-latency")
    assert "verification" not in redone["packages"][0]
    assert not any("reused_from" in p for p in redone["parity"] + redone["cold_start"])
    assert parity_results(redone) == parity_results(first)
    assert redone["packages"][0]["sha256"] == first["packages"][0]["sha256"]
    assert json.loads(sidecar.read_text())["created_at"] >= json.loads(reference_record)["created_at"]


def test_fully_reused_rerun_never_imports_torch(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    """What is left of a re-run whose every package is reused is start-up; torch (1.6 s of it here) is not
    imported: no device probe, environment capture or thread setting needs it (docs/performance.md)."""
    out = tmp_path / "out"
    shutil.copytree(minilm_pack_onnx, out)
    proc = pack_process(
        "minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), "--quiet",
        python_args=("-X", "importtime"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported, "the import log was read"  # the preflight's install check
    assert "torch" not in imported and "transformers" not in imported
    report = json.loads((out / "report.json").read_text())
    assert report["packages"][0]["verification"]["cpu"]["reused_from"]
    assert report["environment"]["torch_threads"] == 1


def test_jobs_give_the_same_zips_and_parity_as_one_job(tmp_path: Path) -> None:
    """torch-script is left out: torch.jit.save writes a random serialization id, so its zips differ run
    to run whatever the jobs (docs/performance.md)."""
    args = ("--backends", "hf,onnx,torch", "--no-latency")
    one = run_pack(tmp_path / "one", *args, "--jobs", "1")
    two = run_pack(tmp_path / "two", *args, "--jobs", "2")
    assert one["meta"]["jobs"]["ran"] == 1 and two["meta"]["jobs"]["ran"] == 2
    assert parity_results(one) == parity_results(two)
    assert [p["backend"] for p in two["packages"]] == ["hf", "onnx", "torch"], "report order is the recipe's"
    for pkg in one["packages"]:
        assert (tmp_path / "one" / pkg["zip"]).read_bytes() == (tmp_path / "two" / pkg["zip"]).read_bytes()
