"""The README's demo command end to end (issue 20): scripts/demo.sh packs PaddleOCR's detector and
recogniser through inference-models' classes, registers them on a local registry (pack registry serve),
runs pack verify-remote on each, then loads both back with AutoModel.from_pretrained and finds and reads
the words of a rendered page. Offline; the registry is stopped when the demo ends."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.packs import child_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # two real packs, two verify-remotes, AutoModel (~2.5 min)


def test_demo_registers_verifies_and_reads_a_rendered_page_through_automodel(
    consumer, tmp_path: Path
) -> None:
    secret = "demo-test-" + "5e" * 8
    env = child_env({"WEIGHTPACK_DEMO_OUT": str(tmp_path / "demo"), "MODELS_SERVICE_INTERNAL_SECRET": secret})
    proc = subprocess.run(
        ["bash", "scripts/demo.sh", "--no-latency", "--quiet"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    assert "AutoModel.from_pretrained('pp-ocrv6-det/v4-ch') -> PPOCRv6DetectionOnnx" in text
    assert "AutoModel.from_pretrained('pp-ocrv6-rec/v4-ch') -> PPOCRv6RecognitionOnnx" in text
    assert "the detector found 3 text regions:" in text
    for word in ("weightpack", "verified", "packages 2026"):
        assert f"read {word!r}" in text
    assert "every rendered word was found and read back" in text
    for model in ("pp-ocrv6-det/v4-ch", "pp-ocrv6-rec/v4-ch"):
        assert f"{model} package " in text
    assert text.count("]: PASSED") == 2 and "consumer: AutoModel loaded inference_models." in text
    assert "registry: stopped" in text and secret not in text
    state = json.loads((tmp_path / "demo" / "registry" / "registry.json").read_text())
    assert sorted(state["models"]) == ["pp-ocrv6-det/v4-ch", "pp-ocrv6-rec/v4-ch"]
    assert all(p["sealed"] for p in state["packages"]) and len(state["packages"]) == 2
    assert (tmp_path / "demo" / "read.png").is_file()
