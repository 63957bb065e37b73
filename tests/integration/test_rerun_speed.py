"""Re-runs reuse finished checks and reference outputs, and give the same zips and parity results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.packs import pack_process, run_pack

pytestmark = pytest.mark.slow


def parity_results(report: dict, *backends: str) -> list[tuple]:
    """The parity rows of ``backends`` (all when none is named)."""
    return sorted(
        (p["variant"], p["backend"], p["device"], p["output"], p["max_abs"], p["passed"])
        for p in report["parity"]
        if not backends or p["backend"] in backends
    )


def test_rerun_keeps_checks_and_reverify_redoes_them(minilm_pack_all: tuple, tmp_path: Path) -> None:
    """A re-run of the session's pack (latency measured) for its ONNX package: checks and reference
    outputs are reused as they were; ``--reverify`` redoes them."""
    packed, first, _ = minilm_pack_all
    out = tmp_path / "out"
    shutil.copytree(packed, out)
    sidecar = next((out / "goldens").glob("*-reference.json"))
    reference_record = sidecar.read_text()

    again = run_pack(out, "--backends", "onnx")
    [pkg] = again["packages"]
    assert pkg["backend"] == "onnx" and pkg["reused"] is True
    when = pkg["verification"]["cpu"]["reused_from"]
    assert parity_results(again) == parity_results(first, "onnx")
    assert all(p["reused_from"] == when for p in again["parity"] + again["latency"] + again["cold_start"])
    first_latency = [lat["samples_ms"] for lat in first["latency"] if lat["backend"] == "onnx"]
    assert first_latency and [lat["samples_ms"] for lat in again["latency"]] == first_latency
    assert sidecar.read_text() == reference_record, "reference outputs were reused, not recomputed"
    assert "checks on cpu from" in (out / "report.md").read_text()

    redone = run_pack(out, "--backends", "onnx", "--reverify", "--no-latency")
    assert "verification" not in redone["packages"][0]
    assert not any("reused_from" in p for p in redone["parity"] + redone["cold_start"])
    assert parity_results(redone) == parity_results(first, "onnx")
    assert redone["packages"][0]["sha256"] == pkg["sha256"]
    assert json.loads(sidecar.read_text())["created_at"] >= json.loads(reference_record)["created_at"]


def test_fully_reused_rerun_never_imports_torch(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    """What is left of a re-run whose every package is reused is start-up; torch (1.6 s of it here) is not
    imported: no device probe, environment capture or thread setting needs it (docs/performance.md)."""
    out = tmp_path / "out"
    shutil.copytree(minilm_pack_onnx, out)
    proc = pack_process(
        "minilm", "--variants", "l6", "--backends", "onnx", "--no-latency", "--out", str(out), "--quiet",
        python_args=("-X", "importtime"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported, "the import log was read"  # the preflight's install check
    assert "torch" not in imported and "transformers" not in imported
    report = json.loads((out / "report.json").read_text())
    assert report["packages"][0]["verification"]["cpu"]["reused_from"]
    assert report["environment"]["torch_threads"] == 1


def test_jobs_give_the_same_zips_and_parity_as_one_job(minilm_pack_all: tuple, tmp_path: Path) -> None:
    """The session's pack ran ``--jobs 2``; one job gives the same zips and parity results. torch-script is
    left out: torch.jit.save writes a random serialization id, so its zips differ run to run whatever the
    jobs (docs/performance.md)."""
    two_out, two, _ = minilm_pack_all
    backends = ("hf", "onnx", "torch")
    one = run_pack(tmp_path / "one", "--backends", ",".join(backends), "--no-latency", "--jobs", "1")
    assert one["meta"]["jobs"]["ran"] == 1 and two["meta"]["jobs"]["ran"] == 2
    assert parity_results(one) == parity_results(two, *backends)
    assert [p["backend"] for p in two["packages"]] == ["hf", "onnx", "torch", "torch-script"], (
        "report order is the recipe's"
    )
    for pkg in one["packages"]:
        assert (tmp_path / "one" / pkg["zip"]).read_bytes() == (two_out / pkg["zip"]).read_bytes()
