"""A real model end to end through the real consumer: PaddleOCR's PP-OCRv4 recogniser (rapidocr-onnxruntime's
weights) packed as ``pp-ocrv6-rec`` in the consumer's layout and verified through the consumer's class
(``.venv-consumer/bin/pack ppocr``), registered on the loopback registry, then resolved, downloaded and
loaded by ``AutoModel.from_pretrained("pp-ocrv6-rec/v4-ch")`` and run on a rendered image of a known word."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager.consumer import bridge
from packager.consumer.model import decode_texts
from tests.packs import copy_of, pack_process, publish

pytestmark = pytest.mark.slow  # real weights end to end (~1 min)

ROOT = Path(__file__).resolve().parents[2]
WORD = "weightpack"
MODEL_ID = "pp-ocrv6-rec/v4-ch"


def render(word: str) -> np.ndarray:
    """Black text on white, a 48-pixel high text line as a detector would crop it; BGR uint8 HWC."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=36)
    left, top, right, bottom = font.getbbox(word)
    image = Image.new("RGB", (right - left + 24, 48), "white")
    ImageDraw.Draw(image).text((12 - left, (48 - (bottom - top)) // 2 - top), word, fill="black", font=font)
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


@pytest.fixture
def packed(ppocr_packed: Path, tmp_path: Path) -> Path:
    """A copy of the session's ``pack ppocr`` by the consumer's venv (tests/consumer/conftest.py)."""
    return copy_of(ppocr_packed, tmp_path, "ppocr")


def register(consumer: str, packed: Path, registry) -> subprocess.CompletedProcess[str]:
    """The consumer's ``pack ppocr --register --execute`` on the packed folder (its package reused)."""
    return pack_process(
        "ppocr", "--out", str(packed), "--no-latency", "--quiet", "--register", "--execute",
        python=consumer, script=True, env=registry.env, timeout=900,
    )  # fmt: skip


def registered(packed: Path) -> None:
    """The packed folder's package registered on the fixture's registry by the publish step in this process
    (the consumer's own run of it is test_registered_package_loads_with_automodel_and_reads_the_word's)."""
    code, text = publish(packed, "--register", "--execute", family=("ppocr",))
    assert code == 0, text[-3000:]


def verify_remote(consumer: str, packed: Path, registry) -> subprocess.CompletedProcess[str]:
    """The consumer's ``pack verify-remote MODEL_ID --json`` against the loopback registry."""
    return pack_process(
        "verify-remote", MODEL_ID, "--env", "staging", "--out", str(packed), "--json",
        python=consumer, script=True, env=registry.env, timeout=900,
    )  # fmt: skip


def test_pack_verifies_through_the_consumers_class(packed):
    report = json.loads((packed / "report.json").read_text())
    assert report["passed"]
    [package] = report["packages"]
    assert package["model_class"].startswith("inference_models.models.pp_ocrv6.")
    with zipfile.ZipFile(packed / package["zip"]) as zf:
        assert sorted(zf.namelist()) == ["inference.onnx", "inference.yml"]
    assert {p["output"] for p in report["parity"]} == {"raw"}  # by element; the text by task
    assert all(p["passed"] and p["max_abs"] == 0 for p in report["parity"])
    [text] = report["task_checks"]
    assert (text["check"], text["output"], text["value"], text["passed"]) == ("max_cer", "result", 0.0, True)
    # the sample inputs are the recipe's texts rendered as text lines: the consumer's class reads them back
    [golden] = [g["path"] for g in report["goldens"] if g["backend"] == "onnx"]
    with np.load(packed / golden) as out:
        read = [t.strip() for t in decode_texts(out["output/result"])]
    assert read == ["weightpack", "inference", "packages 2026", "verified"]


def test_registered_package_loads_with_automodel_and_reads_the_word(
    consumer, packed, registry_server, tmp_path
):
    proc = register(consumer, packed, registry_server)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [package] = registry_server.sealed(MODEL_ID)
    assert sorted(package.handles) == ["inference.onnx", "inference.yml"]
    inputs = tmp_path / "word.npz"
    np.savez(inputs, **{"input/image": render(WORD)[None]})
    answer = bridge.ask(
        "auto-load",
        {
            "model_id": MODEL_ID,
            "api_host": registry_server.url,
            "api_key": registry_server.secret,
            "inputs": str(inputs),
            "outputs": str(tmp_path / "out.npz"),
            "cache_dir": str(tmp_path / "consumer-cache"),
        },
    )
    assert answer["model_class"].endswith(":PPOCRv6RecognitionOnnx")
    assert answer["text"] == [WORD]
    with np.load(tmp_path / "out.npz") as out:
        assert decode_texts(out["output/result"]) == [WORD]


def test_consumer_refuses_the_old_loopback_ids(consumer, packed, registry_server, tmp_path):
    """Why the loopback registry issues alphanumeric ids: the consumer refuses ``pkg-1`` outright."""
    registered(packed)
    [package] = registry_server.sealed(MODEL_ID)
    registry_server.packages["pkg-1"] = registry_server.packages.pop(package.id)
    package.id = "pkg-1"
    np.savez(tmp_path / "word.npz", **{"input/image": render(WORD)[None]})
    request = {"model_id": MODEL_ID, "api_host": registry_server.url, "api_key": registry_server.secret,
               "inputs": str(tmp_path / "word.npz"), "outputs": str(tmp_path / "out.npz"),
               "cache_dir": str(tmp_path / "consumer-cache")}  # fmt: skip
    with pytest.raises(RuntimeError, match=r"pkg-1 which has invalid format"):
        bridge.ask("auto-load", request)


def test_verify_remote_goes_through_the_consumer(consumer, packed, registry_server):
    """``pack verify-remote`` (run where the consumer is installed) checks the registered package with
    weightpack's own check (through the consumer's class the pack recorded) and with AutoModel."""
    registered(packed)
    proc = verify_remote(consumer, packed, registry_server)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = json.loads(proc.stdout)["packages"]
    assert result["passed"] and result["model_class"].endswith(":PPOCRv6RecognitionOnnx")
    assert result["consumer"]["passed"] and result["consumer"]["gating"]
    assert any(d.startswith("consumer: AutoModel loaded inference_models.") for d in result["details"])
    assert "consumer task max_cer on result: ok 0 (at most 0)" in result["details"]  # the text, by task
    assert any(d.startswith("consumer raw: ok max_abs=0.0") for d in result["details"])
    assert registry_server.secret not in proc.stdout + proc.stderr


def test_verify_remote_asks_the_consumer_about_each_registered_package(
    consumer, packed, registry_server, gcs_emulator
):
    """Three registered packages: the pack's, a copy with a file whose stored bytes differ from its md5,
    and a copy registered as a backend the consumer has no class for. Left to choose, AutoModel would fall
    back from the one that fails to another and report one success for all; told each package's id, the
    consumer fails the corrupted one only, and reports (without failing) the one it cannot load."""
    registered(packed)
    [good] = registry_server.sealed(MODEL_ID)

    def corrupt(handle: str, data: bytes) -> bytes:
        return data + b"\n# not these bytes" * (handle == "inference.yml")

    bad = registry_server.copy_package(good, edit=corrupt)
    hf_manifest = {"type": "hf-model-package-v1", "backendType": "hf", "quantization": "fp32"}
    no_class = registry_server.copy_package(good, manifest=hf_manifest)
    proc = verify_remote(consumer, packed, registry_server)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r["package_id"]: r for r in json.loads(proc.stdout)["packages"]}
    assert results[good.id]["passed"] and results[good.id]["consumer"]["passed"]
    assert not results[bad.id]["passed"] and not results[bad.id]["consumer"]["passed"]
    assert results[good.id]["consumer"]["package_id"] == good.id
    assert any(
        d.startswith(f"consumer (package {bad.id}): AutoModel failed") for d in results[bad.id]["details"]
    )
    assert results[no_class.id]["passed"] and not results[no_class.id]["consumer"]["gating"]
    no_class_line = f"consumer (package {no_class.id}): inference-models ships no class for this package's"
    assert any(d.startswith(no_class_line) for d in results[no_class.id]["details"])
    record = json.loads((packed / "remote-verified.staging.json").read_text())
    assert record["models"][MODEL_ID]["onnx"]["package_id"] == good.id
