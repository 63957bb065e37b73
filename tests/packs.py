"""Session fixtures that run a real ``pack`` once (registered as a plugin in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_pack(out: Path, *args: str) -> dict:
    """``pack minilm --variants l6 --out OUT --quiet ARGS`` in a subprocess; returns report.json."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "packager.cli", "minilm", "--variants", "l6", "--out", str(out), "--quiet"]
    proc = subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="session")
def minilm_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A verified ``pack minilm --variants l6 --backends onnx`` output folder (report.json, zip, goldens)."""
    out = tmp_path_factory.mktemp("minilm-pack-onnx")
    report = run_pack(out, "--backends", "onnx")
    assert report["passed"]
    return out
