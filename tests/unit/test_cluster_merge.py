"""The driver's side of ``pack --ray`` without Ray: what tasks send back (a real zip and manifest, real
parity results, golden bytes) written into the output folder and put into the report as a local run
puts its own (``packager.cluster.merge``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench.parity import compare_outputs
from bench.report import Report
from packager import archive, manifest, reuse
from packager.build import PackageBuild
from packager.check import CheckResult
from packager.cluster.merge import TargetResult, assemble, gather, kept_records
from packager.cluster.plan import PackagePlan
from packager.cluster.targets import ClusterError
from packager.cluster.task import DeviceCheck, Outcome, portable
from packager.errors import ExportError
from packager.recipes import load_recipe
from packager.ui import UI
from packager.verify import Verification

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = {"y": np.array([[1.0, 2.0, 3.0]], dtype=np.float32)}

SEAL = reuse.Seal(b"k" * 32)
"""A run's seal (a fixed key: no cache folder needed)."""


def node(name: str, target: str) -> dict:
    return {
        "node_id": f"{name}-0123456789",
        "hostname": name,
        "address": "10.0.0.1",
        "target": target,
        "pid": 7,
    }


def built_on_a_node(tmp_path: Path, payload: bytes = b"weights") -> tuple[PackageBuild, bytes, bytes]:
    """A package as a task builds it in its scratch folder: (build, zip bytes, manifest bytes)."""
    staging, scratch = tmp_path / "staging", tmp_path / "scratch"
    staging.mkdir(parents=True)
    (staging / "model.onnx").write_bytes(payload)
    result = archive.build_zip(staging, scratch / "mtcnn-pnet-onnx.zip")
    path = manifest.write_manifest(result, package_manifest={"k": 1}, provenance={}, extra={"input_key": "x"})
    build = PackageBuild("pnet", "onnx", result, path, "m:C", {"k": 1}, reused=False)
    return build, result.zip_path.read_bytes(), path.read_bytes()


def checked(target: str, outputs: dict) -> DeviceCheck:
    """One device's verification as a task returns it (golden as bytes, the path its own)."""
    parity = compare_outputs(REFERENCE, outputs, lambda name, dtype: (1e-5, 1e-5))
    v = Verification(device="cpu", cold_start={"total_s": 0.1}, checks=[(None, CheckResult(outputs, parity))])
    v.golden = Path("/node/scratch/goldens/mtcnn-pnet-onnx-cpu.npz")
    golden = io.BytesIO()
    np.savez(golden, **{f"output/{k}": a for k, a in outputs.items()})
    return DeviceCheck(f"cpu@{target}", f"key-{target}", v, golden.getvalue())


def test_a_package_built_on_one_node_and_checked_on_two_is_one_package_two_rows(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build, zip_bytes, manifest_bytes = built_on_a_node(tmp_path)
    a, b = TargetResult("a"), TargetResult("b")
    gather(
        out,
        Outcome(node("h", "a"), build, zip_bytes, manifest_bytes, [checked("a", REFERENCE)]),
        a,
        None,
    )
    assert (out / "mtcnn-pnet-onnx.zip").read_bytes() == zip_bytes and a.built_here
    # target b verified the shipped zip (no bytes back) and found it off
    off = {"y": np.array([[1.0, 2.0, 3.5]], dtype=np.float32)}
    gather(out, Outcome(node("w", "b"), build, None, None, [checked("b", off)]), b, a.build)
    assert not b.built_here and b.build.zip_result.zip_path == out / "mtcnn-pnet-onnx.zip"  # type: ignore[union-attr]
    recipe = load_recipe(ROOT / "recipes" / "mtcnn.toml")
    report = Report.start(recipe, {})
    assemble(
        report, recipe, PackagePlan("pnet", "onnx", ("a", "b"), builder="a"), [a, b], None, out, UI(), SEAL
    )
    [package] = report.packages
    assert package["zip"] == "mtcnn-pnet-onnx.zip" and package["cluster"]["built_on"]["hostname"] == "h"
    assert {t: v["node"]["hostname"] for t, v in package["cluster"]["targets"].items()} == {
        "a": "h",
        "b": "w",
    }
    assert [(p["device"], p["passed"]) for p in report.parity] == [("cpu@a", True), ("cpu@b", False)]
    assert [g["path"] for g in report.goldens] == [
        "goldens/mtcnn-pnet-onnx-cpu@a.npz",
        "goldens/mtcnn-pnet-onnx-cpu@b.npz",
    ]
    assert all((out / g["path"]).is_file() for g in report.goldens)
    # only the passed target's checks are kept for the next run, under its label
    kept = kept_records(out, "mtcnn-pnet-onnx.zip", "a", SEAL)
    assert list(kept) == ["cpu@a"] and kept["cpu@a"]["key"] == "key-a"
    assert (
        kept_records(out, "mtcnn-pnet-onnx.zip", "b", SEAL) == {}
        and kept_records(out, "mtcnn-pnet-onnx.zip", None, SEAL) == {}
    )


def test_a_kept_check_is_replayed_and_a_failed_target_recorded_with_its_target(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build, zip_bytes, manifest_bytes = built_on_a_node(tmp_path)
    recipe = load_recipe(ROOT / "recipes" / "mtcnn.toml")
    plan = PackagePlan("pnet", "onnx", ("a", "b"), builder="a")
    first = Report.start(recipe, {})
    a = TargetResult("a")
    gather(
        out,
        Outcome(node("h", "a"), build, zip_bytes, manifest_bytes, [checked("a", REFERENCE)]),
        a,
        None,
    )
    assemble(first, recipe, plan, [a], None, out, UI(), SEAL)
    # the re-run: a's node matched the kept record; b's task failed to export
    again, b = TargetResult("a"), TargetResult("b")
    again.kept = kept_records(out, "mtcnn-pnet-onnx.zip", "a", SEAL)
    gather(
        out,
        Outcome(node("h", "a"), build, None, None, [DeviceCheck("cpu@a", "key-a", None)]),
        again,
        None,
    )
    failed = Outcome(node("w", "b"), failure=("export", portable(ExportError("onnx export failed: boom"))))
    gather(out, failed, b, again.build)
    report = Report.start(recipe, {})
    assemble(report, recipe, plan, [again, b], None, out, UI(), SEAL)
    assert report.packages[0]["verification"]["cpu@a"]["reused_from"]
    assert report.packages[0]["cluster"]["reused_from_out"] is True
    assert [p["reused_from"] for p in report.parity] == [again.kept["cpu@a"]["verified_at"]]
    [failure] = report.failures
    assert (failure["stage"], failure["target"], failure["error"]) == ("export", "b", "ExportError")
    assert "boom" in failure["message"]


def test_two_nodes_that_build_different_bytes_fail_the_second_target(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build, zip_bytes, manifest_bytes = built_on_a_node(tmp_path / "one")
    other, other_zip, other_manifest = built_on_a_node(tmp_path / "two", payload=b"other weights")
    a, b = TargetResult("a"), TargetResult("b")
    gather(out, Outcome(node("h", "a"), build, zip_bytes, manifest_bytes, []), a, None)
    gather(out, Outcome(node("w", "b"), other, other_zip, other_manifest, []), b, a.build)
    assert (out / "mtcnn-pnet-onnx.zip").read_bytes() == zip_bytes  # the first one kept
    stage, error = b.failure  # type: ignore[misc]
    assert stage == "export" and isinstance(error, ClusterError) and error.exit_code == 3
    assert "the nodes' libraries differ" in str(error) and other.zip_result.sha256 in str(error)
    assert (
        json.loads((out / "mtcnn-pnet-onnx.manifest.json").read_text())["zip"]["sha256"]
        == build.zip_result.sha256
    )


def test_a_record_of_another_package_or_target_is_not_kept(tmp_path: Path) -> None:
    out = tmp_path
    (out / "goldens").mkdir()
    (out / "goldens" / "g.npz").write_bytes(b"x")
    for name, zip_name, label in [
        ("mtcnn-pnet-onnx-cpu@a.json", "mtcnn-pnet-onnx.zip", "cpu@a"),
        ("mtcnn-pnet-onnx-h100-cpu@h100.json", "mtcnn-pnet-onnx-h100.zip", "cpu@h100"),
        ("mtcnn-pnet-onnx-cpu.json", "mtcnn-pnet-onnx.zip", "cpu"),
    ]:
        path = out / reuse.VERIFIED_DIR / name
        path.parent.mkdir(exist_ok=True)
        record = {
            "schema": reuse.RECORD_SCHEMA,
            "key": "k",
            "verified_at": "t",
            "zip": zip_name,
            "device": label,
        }
        record["entries"] = {"goldens": [{"path": "goldens/g.npz"}]}
        path.write_text(json.dumps(SEAL.close(record, out, ["goldens/g.npz"])))
    assert list(kept_records(out, "mtcnn-pnet-onnx.zip", "a", SEAL)) == ["cpu@a"]
    assert list(kept_records(out, "mtcnn-pnet-onnx.zip", None, SEAL)) == ["cpu"]
    assert list(kept_records(out, "mtcnn-pnet-onnx-h100.zip", "h100", SEAL)) == ["cpu@h100"]


@pytest.mark.parametrize("label", ["cpu@a", "cuda:0@h100"])
def test_a_labelled_golden_is_a_plain_file_name(tmp_path: Path, label: str) -> None:
    build, zip_bytes, manifest_bytes = built_on_a_node(tmp_path)
    result = TargetResult(label.split("@")[1])
    check = checked("a", REFERENCE)
    check.label = label
    gather(
        tmp_path / "out",
        Outcome(node("h", "a"), build, zip_bytes, manifest_bytes, [check]),
        result,
        None,
    )
    golden = result.checks[0].verification.golden  # type: ignore[union-attr]
    assert golden.parent == tmp_path / "out" / "goldens" and ":" not in golden.name and golden.is_file()
