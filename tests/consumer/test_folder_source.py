"""Issue 20.2: a folder source (PaddleOCR's graph with its inference.yml) is adopted like a single .onnx
file, so the consumer's layout takes its config with ``files = { source = ... }`` (before: the reference
class was asked for a torch_module() to re-export the graph, and a hook module had to be written)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.packs import pack_process

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # one real pack through the consumer (~20 s)

RECIPE = """
[family]
architecture = "pp-ocrv6-det"
task = "object-detection"

[variants.v1]
source = "./detector"

[consumer]
loads = true

[backends.onnx]
model_class = "inference_models.models.pp_ocrv6.pp_ocrv6_detection_onnx:PPOCRv6DetectionOnnx"
rename = { "weights.onnx" = "inference.onnx" }
files = { "inference.yml" = { source = "inference.yml" } }

[inputs]
kind = "text-image"
texts = ["weightpack", "inference"]
tensors = [{ name = "image", shape = [2, 128, 640, 3], dtype = "uint8" }]

[parity]
reference_class = "ppocr_files:RapidOCRDetector"

[parity.task]
check = "detection"
"""


def test_a_folder_source_is_adopted_and_its_config_taken_by_the_layout(consumer, tmp_path: Path) -> None:
    where = "import rapidocr_onnxruntime, os; print(os.path.dirname(rapidocr_onnxruntime.__file__))"
    site = subprocess.run([consumer, "-c", where], capture_output=True, text=True, check=True)
    detector = tmp_path / "detector"
    detector.mkdir()
    shutil.copy(Path(site.stdout.strip()) / "models" / "ch_PP-OCRv4_det_infer.onnx", detector)
    from recipes.ppocr_files import det_inference_yml  # the config PaddleOCR ships beside its graph

    request = type("Request", (), {"architecture": "pp-ocrv6-det", "variant": "v1", "upstream_dir": detector})
    (detector / "inference.yml").write_text(det_inference_yml(request))
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mydet.toml").write_text(RECIPE)
    proc = pack_process(
        "mydet", "--recipes", "recipes", "--no-latency", "--json", "--out", "out",
        cwd=tmp_path, paths=(ROOT / "recipes",), python=consumer, script=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["verdict"] == "PASSED"
    [package] = summary["packages"]
    with zipfile.ZipFile(tmp_path / "out" / package["zip"]) as zf:
        assert sorted(zf.namelist()) == ["inference.onnx", "inference.yml"]
        assert zf.read("inference.yml") == (detector / "inference.yml").read_bytes()
