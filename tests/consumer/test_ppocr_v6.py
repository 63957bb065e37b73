"""PP-OCRv6 end to end through the real consumer: the official PP-OCRv6 small detector and recogniser that
the PyPI package rapidocr 3.10 ships in its wheel, packed as ``pp-ocrv6-det`` and ``pp-ocrv6-rec`` (the
classes inference-models names for exactly these models) by ``.venv-consumer/bin/pack ppocr-v6-det`` and
``pack ppocr-v6``, each verified through the consumer's class against rapidocr 3's own pipeline with one
task check, registered on the loopback registry, then loaded back by ``AutoModel.from_pretrained`` (the
demo's reader, scripts/demo_read.py) which finds and reads the words of a rendered page."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager.consumer.model import decode_texts
from tests.packs import child_env, pack_process

pytestmark = pytest.mark.slow  # two real packs and AutoModel from the registry (~1.5 min)

ROOT = Path(__file__).resolve().parents[2]
DETECTOR, RECOGNIZER = "pp-ocrv6-det/v6-small", "pp-ocrv6-rec/v6-small"


def pack(consumer: str, family: str, out: Path, *extra: str, env: dict) -> subprocess.CompletedProcess[str]:
    """The consumer's ``pack FAMILY --out OUT --no-latency --quiet EXTRA``."""
    argv = (family, "--out", str(out), "--no-latency", "--quiet", *extra)
    return pack_process(*argv, python=consumer, script=True, env=env, timeout=900)


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_rapidocr_ships_the_pp_ocrv6_weights_in_its_wheel(consumer) -> None:
    """The source is the installed wheel's own files, no download: rapidocr 3.10 carries both graphs."""
    code = (
        "import importlib.resources as r, json; d = r.files('rapidocr') / 'models'; "
        "print(json.dumps({p.name: p.stat().st_size for p in d.iterdir() if p.name.endswith('.onnx')}))"
    )
    proc = subprocess.run([consumer, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sizes = json.loads(proc.stdout)
    assert sizes["PP-OCRv6_det_small.onnx"] > 5_000_000 and sizes["PP-OCRv6_rec_small.onnx"] > 10_000_000


def test_pp_ocrv6_packs_register_and_read_a_rendered_page_through_automodel(
    consumer, registry_server, tmp_path: Path
) -> None:
    det_out, rec_out = tmp_path / "det", tmp_path / "rec"
    for family, out in (("ppocr-v6-det", det_out), ("ppocr-v6", rec_out)):
        proc = pack(consumer, family, out, "--register", "--execute", env=registry_server.env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "[RapidOCR]" not in proc.stdout + proc.stderr  # the reference's INFO lines are kept quiet

    # verified through the consumer's own classes, judged by task against rapidocr 3's pipeline
    for out, name in ((det_out, "PPOCRv6DetectionOnnx"), (rec_out, "PPOCRv6RecognitionOnnx")):
        report = report_of(out)
        [package] = report["packages"]
        assert report["passed"] and package["model_class"].endswith(f":{name}")
        with zipfile.ZipFile(out / package["zip"]) as zf:
            assert sorted(zf.namelist()) == ["inference.onnx", "inference.yml"]
        assert report["task_checks"] and all(t["passed"] for t in report["task_checks"])
    det_checks = {t["check"]: t["value"] for t in report_of(det_out)["task_checks"]}
    assert det_checks["recall@iou0.5"] == 1.0 and det_checks["precision@iou0.5"] == 1.0
    assert det_checks["min_box_iou"] >= 0.8
    [text] = report_of(rec_out)["task_checks"]
    assert (text["check"], text["value"]) == ("max_cer", 0.0)
    # what the consumer's classes answered on the recipes' rendered words (the goldens)
    rec = report_of(rec_out)
    [golden] = [g["path"] for g in rec["goldens"] if g["backend"] == "onnx"]
    with np.load(rec_out / golden) as outputs:
        assert [t.strip() for t in decode_texts(outputs["output/result"])] == [
            "weightpack", "inference", "packages 2026", "verified",
        ]  # fmt: skip
    det = report_of(det_out)
    [golden] = [g["path"] for g in det["goldens"] if g["backend"] == "onnx"]
    with np.load(det_out / golden) as outputs:
        assert [len(outputs[f"output/result.{i}.xyxy"]) for i in range(4)] == [1, 1, 1, 1]  # a box a word

    [det_package] = registry_server.sealed(DETECTOR)
    [rec_package] = registry_server.sealed(RECOGNIZER)
    assert sorted(det_package.handles) == sorted(rec_package.handles) == ["inference.onnx", "inference.yml"]

    env = child_env({
        "ROBOFLOW_API_HOST": registry_server.url,
        "ROBOFLOW_API_KEY": registry_server.secret,
        "INFERENCE_HOME": str(tmp_path / "consumer-cache"),
        "MODEL_CACHE_DIR": str(tmp_path / "consumer-cache"),
        "ONNXRUNTIME_EXECUTION_PROVIDERS": "[CPUExecutionProvider]",
    })  # fmt: skip
    read = [consumer, "scripts/demo_read.py", "--detector", DETECTOR, "--recognizer", RECOGNIZER]
    proc = subprocess.run(read, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert f"AutoModel.from_pretrained({DETECTOR!r}) -> PPOCRv6DetectionOnnx" in text
    assert f"AutoModel.from_pretrained({RECOGNIZER!r}) -> PPOCRv6RecognitionOnnx" in text
    assert "the detector found 3 text regions:" in text
    for word in ("weightpack", "verified", "packages 2026"):
        assert f"read {word!r}" in text
    assert "every rendered word was found and read back" in text


def test_the_reference_says_what_to_install_without_rapidocr(tmp_path: Path) -> None:
    """Where rapidocr 3 is missing (the main venv), loading the reference fails with what to do."""
    code = (
        "import sys; sys.path.insert(0, 'recipes'); sys.modules['rapidocr'] = None\n"
        "from ppocr_v6_files import RapidOCRv6Detector\n"
        "RapidOCRv6Detector.from_pretrained('x.onnx')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env=child_env(),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "the PP-OCRv6 reference needs rapidocr 3.10 (scripts/setup_consumer.sh installs it)" in proc.stderr
