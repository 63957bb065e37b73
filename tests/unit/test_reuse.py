"""packager.reuse: a kept verification or reference output is used only while everything it depends on is
unchanged; replaying it gives the report the same entries, marked with when they were measured."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench.markdown import render_markdown
from bench.report import Report
from packager import reuse
from packager.goldens import save_arrays
from packager.recipes import default_recipe_dirs, resolve_family
from packager.reference import ReferenceSpec

ENV = {
    "python": "3.11.7",
    "platform": "Linux",
    "machine": "x86_64",
    "cpu": "AMD EPYC",
    "cpu_count": 2,
    "cpu_affinity": 2,
    "libraries": {"torch": "2.13.0", "onnxruntime": "1.32.0"},
    "onnxruntime_providers": ["CPUExecutionProvider"],
    "tensorrt_version": None,
    "threads": {"torch": 1},
    "cuda": None,
    "nvml_before": None,
    "warnings": [],
}


def seal_of(tmp_path: Path) -> reuse.Seal:
    """The seal of a cache beside the test's output (its key made on first use)."""
    return reuse.Seal.of_cache(tmp_path / "cache")


def recipe():
    return resolve_family("minilm", default_recipe_dirs())


def build(tmp_path: Path, sha: str = "a" * 64) -> SimpleNamespace:
    zip_result = SimpleNamespace(zip_path=tmp_path / "all-minilm-l6-onnx.zip", sha256=sha)
    return SimpleNamespace(variant="l6", backend="onnx", model_class="m:C", zip_result=zip_result)


def test_environment_fingerprint_ignores_what_changes_by_the_minute() -> None:
    base = reuse.environment_fingerprint(ENV)
    assert reuse.environment_fingerprint({**ENV, "nvml_before": [{"clock": 1}], "warnings": ["hot"]}) == base
    assert reuse.environment_fingerprint({**ENV, "libraries": {"torch": "2.14.0"}}) != base
    assert reuse.environment_fingerprint({**ENV, "threads": {"torch": 2}}) != base
    gpu = {"cuda_version": "12.4", "devices": [{"name": "H100", "compute_capability": "9.0"}]}
    assert reuse.environment_fingerprint({**ENV, "cuda": gpu}) != base


def test_verification_key_changes_with_each_thing_the_checks_depend_on(tmp_path: Path) -> None:
    r, b = recipe(), build(tmp_path)
    key = reuse.verification_key(r, b, "cpu", True, "ref", "env")
    assert key == reuse.verification_key(r, b, "cpu", True, "ref", "env")
    changed = [
        reuse.verification_key(r, build(tmp_path, "b" * 64), "cpu", True, "ref", "env"),  # other zip bytes
        reuse.verification_key(r, b, "cuda:0", True, "ref", "env"),
        reuse.verification_key(r, b, "cpu", False, "ref", "env"),  # latency off
        reuse.verification_key(r, b, "cpu", True, "other reference outputs", "env"),
        reuse.verification_key(r, b, "cpu", True, "ref", "other environment"),
        reuse.verification_key(
            dataclasses.replace(r, parity=dataclasses.replace(r.parity, min_cosine=0.5)),
            b,
            "cpu",
            True,
            "ref",
            "env",
        ),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_reference_key_follows_upstream_files_and_inputs() -> None:
    r = recipe()
    spec = ReferenceSpec("backends.hf.model:HFModel", kind="hf")
    files = {"files": [{"path": "model.safetensors", "sha256": "1" * 64}]}
    key = reuse.reference_key(r, "l6", files, spec)
    assert key == reuse.reference_key(r, "l6", files, spec)
    assert key != reuse.reference_key(
        r, "l6", {"files": [{"path": "model.safetensors", "sha256": "2" * 64}]}, spec
    )
    other_inputs = dataclasses.replace(r, inputs=dataclasses.replace(r.inputs, max_length=32))
    assert key != reuse.reference_key(other_inputs, "l6", files, spec)
    assert key != reuse.reference_key(r, "l6", files, ReferenceSpec("x:Y", kind="class"))


def test_reference_outputs_round_trip_and_stale_key_is_ignored(tmp_path: Path) -> None:
    golden = tmp_path / "goldens" / "a-l6-reference.npz"
    inputs = {"input_ids": np.arange(6, dtype=np.int64).reshape(2, 3)}
    outputs = {"sentence_embedding": np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4)}
    save_arrays(
        golden,
        {**{f"input/{k}": v for k, v in inputs.items()}, **{f"output/{k}": v for k, v in outputs.items()}},
    )
    assert reuse.load_reference(golden, "k1", seal_of(tmp_path)) is None, "no record yet"
    reuse.save_reference(
        golden, "k1", seal_of(tmp_path), casts=[], learned={"input_names": ["x"]}, noise_floor=None
    )
    got_inputs, got_outputs, record = reuse.load_reference(golden, "k1", seal_of(tmp_path))
    assert np.array_equal(got_inputs["input_ids"], inputs["input_ids"])
    assert got_outputs["sentence_embedding"].dtype == np.float32
    assert np.array_equal(got_outputs["sentence_embedding"], outputs["sentence_embedding"])
    assert record["learned_kwargs"] == {"input_names": ["x"]}
    assert reuse.load_reference(golden, "k2", seal_of(tmp_path)) is None, (
        "another key means other upstream or inputs"
    )


def test_passed_verification_is_kept_and_replayed_with_its_time(tmp_path: Path) -> None:
    r, b = recipe(), build(tmp_path)
    report = Report.start(r, ENV, {"out_dir": str(tmp_path)})
    golden = save_arrays(tmp_path / "goldens" / "all-minilm-l6-onnx-cpu.npz", {"output/e": np.ones(3)})
    mine = {"variant": "l6", "backend": "onnx", "device": "cpu"}
    report.parity.append({**mine, "output": "e", "max_abs": 1e-6, "passed": True})
    report.cold_start.append({**mine, "total_s": 0.5})
    report.goldens.append({**mine, "path": "goldens/all-minilm-l6-onnx-cpu.npz"})
    report.parity.append({**mine, "device": "cuda:0", "output": "e", "passed": False})  # another device
    assert reuse.checks_passed(report, b, "cpu") and not reuse.checks_passed(report, b, "cuda:0")
    path = reuse.record_path(tmp_path, b, "cpu")
    reuse.save_verification(path, "key", report, b, "cpu", seal_of(tmp_path))

    assert reuse.load_verification(path, "other key", tmp_path, seal_of(tmp_path)) is None
    record = reuse.load_verification(path, "key", tmp_path, seal_of(tmp_path))
    again = Report.start(r, ENV, {"out_dir": str(tmp_path)})
    outputs = reuse.replay(record, again, tmp_path)
    assert np.array_equal(outputs["e"], np.ones(3))
    assert [{k: v for k, v in e.items() if k != "reused_from"} for e in again.parity] == [report.parity[0]]
    assert {e["reused_from"] for e in again.parity + again.cold_start} == {record["verified_at"]}
    golden.unlink()
    assert reuse.load_verification(path, "key", tmp_path, seal_of(tmp_path)) is None, (
        "its golden outputs are gone"
    )


def test_report_md_says_what_was_reused_and_from_when(tmp_path: Path) -> None:
    report = Report.start(recipe(), ENV, {"out_dir": str(tmp_path)})
    report.packages.append(
        {
            "variant": "l6",
            "backend": "onnx",
            "zip": "z.zip",
            "size": 10,
            "files": [],
            "sha256": "a" * 64,
            "reused": True,
            "verification": {"cpu": {"reused_from": "2026-11-28T20:00:00+00:00"}},
        }
    )
    assert "zip; checks on cpu from 2026-11-28T20:00:00+00:00" in render_markdown(report.to_dict())
