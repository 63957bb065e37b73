"""What a re-run keeps is evidence, not truth (issue 25, left over): a ``.verified`` record edited to say
``max_abs 12345, passed true`` made the run pass, and a reference golden or its sidecar was believed as it
lay on disk. Each record is sealed (HMAC keyed by ``CACHE/hashes.key`` over its canonical JSON and the
sha256 of the files it vouches for); one whose seal does not hold is not reused, and the run says why once.

The same on real runs of ``pack``: the slow tests below."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.report import Report
from packager import reuse
from packager.cache import default_cache_dir
from packager.goldens import ParityCase, save_arrays, save_golden
from packager.sources import hash_cache
from tests.packs import pack_process
from tests.unit.test_reuse import ENV, build, recipe

MINE = {"variant": "l6", "backend": "onnx", "device": "cpu"}
REFERENCE = "goldens/all-minilm-l6-reference.npz"


class Notices(list):
    """What a run would say (on the progress and in report.meta)."""

    def seal(self, cache: Path) -> reuse.Seal:
        return reuse.Seal.of_cache(cache, self.append)


def reference_golden(out: Path, cache: Path, notices: Notices) -> Path:
    x = np.asarray([[0.5, -0.25]], dtype=np.float32)
    path = save_golden(out / REFERENCE, [ParityCase(None, {"x": x}, {"y": x})])
    reuse.save_reference(path, "rk", notices.seal(cache), casts=[], learned={"a": 1}, noise_floor=None)
    return path


def verified(out: Path, cache: Path, notices: Notices) -> tuple[Path, SimpleNamespace]:
    """A passed check saved for reuse, as the pipeline saves it."""
    reference_golden(out, cache, notices)
    r, b = recipe(), build(out)
    report = Report.start(r, ENV, {"out_dir": str(out)})
    report.references["l6"] = {"golden": REFERENCE}
    save_arrays(out / "goldens" / "all-minilm-l6-onnx-cpu.npz", {"output/e": np.ones(3)})
    report.parity.append({**MINE, "output": "e", "max_abs": 1e-6, "passed": True})
    report.goldens.append({**MINE, "path": "goldens/all-minilm-l6-onnx-cpu.npz"})
    path = reuse.record_path(out, b, "cpu")
    reuse.save_verification(path, "key", report, b, "cpu", notices.seal(cache))
    return path, b


def load(path: Path, out: Path, cache: Path, notices: Notices, sha: str = "a" * 64) -> dict | None:
    return reuse.load_verification(path, "key", out, notices.seal(cache), zip_sha256=sha)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_an_untouched_record_is_reused_and_says_nothing(tmp_path: Path) -> None:
    out, cache, notices = tmp_path / "out", tmp_path / "cache", Notices()
    path, _ = verified(out, cache, notices)
    assert load(path, out, cache, notices)["entries"]["parity"][0]["max_abs"] == 1e-6
    kept = reuse.load_reference(out / REFERENCE, "rk", notices.seal(cache))
    assert kept is not None and kept[2]["learned_kwargs"] == {"a": 1}
    assert notices == []
    assert oct((cache / hash_cache.KEY_FILE).stat().st_mode & 0o777) == "0o600"


def forge_max_abs(data: dict) -> None:
    data["entries"]["parity"][0].update(max_abs=12345, passed=True)


def forge_and_reseal_with_a_guess(data: dict) -> None:
    forge_max_abs(data)
    data["seal"]["mac"] = "0" * 64


TAMPERINGS = {
    "edited-max-abs": (lambda out, cache: edit_json(reuse_path(out), forge_max_abs), "seal does not hold"),
    "forged-mac": (
        lambda out, cache: edit_json(reuse_path(out), forge_and_reseal_with_a_guess),
        "seal does not hold",
    ),
    "seal-removed": (lambda out, cache: edit_json(reuse_path(out), lambda d: d.pop("seal")), "not sealed"),
    "package-golden-edited": (
        lambda out, cache: save_arrays(out / "goldens/all-minilm-l6-onnx-cpu.npz", {"output/e": np.zeros(3)}),
        "goldens/all-minilm-l6-onnx-cpu.npz changed",
    ),
    "reference-golden-edited": (
        lambda out, cache: save_arrays(out / REFERENCE, {"output/y": np.zeros((1, 2), np.float32)}),
        f"{REFERENCE} changed",
    ),
    "package-golden-gone": (
        lambda out, cache: (out / "goldens/all-minilm-l6-onnx-cpu.npz").unlink(),
        "goldens/all-minilm-l6-onnx-cpu.npz is gone",
    ),
    "key-deleted": (lambda out, cache: (cache / hash_cache.KEY_FILE).unlink(), "seal does not hold"),
    "key-of-another-cache": (
        lambda out, cache: shutil.copy(cache.parent / "other" / hash_cache.KEY_FILE, cache),
        "seal does not hold",
    ),
}


def reuse_path(out: Path) -> Path:
    return out / ".verified" / "all-minilm-l6-onnx-cpu.json"


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_a_tampered_verification_is_not_reused_and_the_run_says_why(tmp_path: Path, name: str) -> None:
    out, cache, notices = tmp_path / "out", tmp_path / "cache", Notices()
    path, _ = verified(out, cache, notices)
    (tmp_path / "other").mkdir()
    hash_cache.load_key(tmp_path / "other" / hash_cache.KEY_FILE)  # another cache's key
    tamper, why = TAMPERINGS[name]
    tamper(out, cache)
    assert load(path, out, cache, notices) is None
    [said] = notices
    assert ".verified/all-minilm-l6-onnx-cpu.json" in said and why in said and "checked again" in said


def test_a_record_of_other_zip_bytes_is_not_reused(tmp_path: Path) -> None:
    out, cache, notices = tmp_path / "out", tmp_path / "cache", Notices()
    path, _ = verified(out, cache, notices)
    assert load(path, out, cache, notices, sha="b" * 64) is None


SIDECAR_TAMPERINGS = {
    "noise-floor-widened": lambda golden: edit_json(
        golden.with_suffix(".json"), lambda d: d.update(noise_floor={"outputs": {"y": {"atol": 1e9}}})
    ),
    "learned-kwargs-edited": lambda golden: edit_json(
        golden.with_suffix(".json"), lambda d: d.update(learned_kwargs={"factory": "os:system"})
    ),
    "golden-edited": lambda golden: save_arrays(golden, {"output/y": np.full((1, 2), 9, np.float32)}),
    "seal-removed": lambda golden: edit_json(golden.with_suffix(".json"), lambda d: d.pop("seal")),
}


@pytest.mark.parametrize("name", list(SIDECAR_TAMPERINGS))
def test_tampered_reference_outputs_are_not_reused(tmp_path: Path, name: str) -> None:
    out, cache, notices = tmp_path / "out", tmp_path / "cache", Notices()
    golden = reference_golden(out, cache, notices)
    SIDECAR_TAMPERINGS[name](golden)
    assert reuse.load_reference(golden, "rk", notices.seal(cache)) is None
    [said] = notices
    assert golden.with_suffix(".json").name in said and "computed again" in said


def test_a_stale_key_is_no_tampering_and_says_nothing(tmp_path: Path) -> None:
    """Another key means other inputs: recomputed as before, nothing to warn about."""
    out, cache, notices = tmp_path / "out", tmp_path / "cache", Notices()
    path, _ = verified(out, cache, notices)
    assert reuse.load_verification(path, "other", out, notices.seal(cache)) is None
    assert reuse.load_reference(out / REFERENCE, "other", notices.seal(cache)) is None
    assert notices == []


def test_the_hash_cache_and_the_records_share_one_key_loader(tmp_path: Path) -> None:
    key = hash_cache.load_key(tmp_path / hash_cache.KEY_FILE)
    assert len(key) == hash_cache.KEY_BYTES and reuse.Seal.of_cache(tmp_path).key == key
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / hash_cache.KEY_FILE).mkdir()  # unusable: nothing is sealed, nothing believed
    notices = Notices()
    seal = notices.seal(tmp_path / "ro")
    assert seal.key == b""
    out = tmp_path / "out"
    golden = save_golden(out / REFERENCE, [ParityCase(None, {"x": np.ones(2)}, {"y": np.ones(2)})])
    reuse.save_reference(golden, "rk", seal, casts=[], learned={}, noise_floor=None)
    assert reuse.load_reference(golden, "rk", seal) is None
    assert "no key" in notices[0]


# ---------------------------------------------------------------- real re-runs of pack


def rerun(out: Path, cache: Path) -> tuple[dict, str]:
    """``pack minilm --variants l6 --backends onnx --no-latency`` again on ``out``, as the session's pack ran
    (other settings would check again whatever the seal says; not quiet: what it says is read)."""
    proc = pack_process(
        "minilm", "--variants", "l6", "--backends", "onnx", "--no-latency", "--out", str(out),
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), proc.stderr


def checked_honestly(report: dict) -> None:
    """Checked again in this run (nothing reused) and passed on real numbers."""
    assert "verification" not in report["packages"][0], report["packages"][0]
    assert not any("reused_from" in e for e in report["parity"] + report["cold_start"] + report["latency"])
    assert report["parity"] and all(p["passed"] and p["max_abs"] < 1e-2 for p in report["parity"])
    assert report["passed"]


@pytest.fixture
def rerunnable(minilm_pack_onnx: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a passed pack and a cache holding the key that sealed its records."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.copytree(minilm_pack_onnx, out)
    cache.mkdir()
    key = default_cache_dir() / hash_cache.KEY_FILE  # the session's pack ran with the default cache
    if key.is_file():
        shutil.copy(key, cache / hash_cache.KEY_FILE)
    return out, cache


def test_pack_replays_no_edited_record(rerunnable: tuple[Path, Path]) -> None:
    out, cache = rerunnable
    edit_json(reuse_path(out), forge_max_abs)
    report, said = rerun(out, cache)
    checked_honestly(report)
    assert 12345 not in [p["max_abs"] for p in report["parity"]]
    assert "seal does not hold" in said and ".verified/all-minilm-l6-onnx-cpu.json" in said
    assert any("seal does not hold" in n for n in report["meta"]["not_reused"])


def test_pack_checks_again_when_a_golden_changed(rerunnable: tuple[Path, Path]) -> None:
    out, cache = rerunnable
    golden = out / "goldens" / "all-minilm-l6-onnx-cpu.npz"
    with np.load(golden) as data:
        arrays = {k: data[k] * 1000 if data[k].dtype.kind == "f" else data[k] for k in data.files}
    save_arrays(golden, arrays)
    report, said = rerun(out, cache)
    checked_honestly(report)
    assert "goldens/all-minilm-l6-onnx-cpu.npz changed" in said


def test_pack_recomputes_an_edited_reference_golden(rerunnable: tuple[Path, Path]) -> None:
    """The reference is computed again (main read the edited one back as the truth). It comes back byte for
    byte as it was (deterministic outputs, fixed npz stamps), so the package's checks, sealed over exactly
    those bytes, may stand: the verdict is the one measured against the true reference."""
    out, cache = rerunnable
    golden = out / REFERENCE
    original = golden.read_bytes()
    first = {(p["output"], p["max_abs"]) for p in json.loads((out / "report.json").read_text())["parity"]}
    with np.load(golden) as data:
        arrays = {k: data[k] * 1000 if data[k].dtype.kind == "f" else data[k] for k in data.files}
    save_arrays(golden, arrays)
    before = json.loads(golden.with_suffix(".json").read_text())["created_at"]
    report, said = rerun(out, cache)
    assert json.loads(golden.with_suffix(".json").read_text())["created_at"] > before
    assert "all-minilm-l6-reference.json not reused" in said and "computed again" in said
    assert golden.read_bytes() == original, "the true reference is back"
    assert {(p["output"], p["max_abs"]) for p in report["parity"]} == first and report["passed"]


def test_pack_checks_again_without_the_key_that_sealed_and_reuses_when_untouched(
    rerunnable: tuple[Path, Path],
) -> None:
    out, cache = rerunnable
    report, _ = rerun(out, cache)
    assert report["packages"][0]["verification"]["cpu"]["reused_from"], "an untouched re-run reuses"
    assert "not_reused" not in report["meta"]
    (cache / hash_cache.KEY_FILE).unlink()
    report, said = rerun(out, cache)
    checked_honestly(report)
    assert "seal does not hold" in said
