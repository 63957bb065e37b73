"""Real packages for tests: one ``pack`` run per session on the MiniLM demo family (onnx only, ~15 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def minilm_pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The out dir of a passed ``pack minilm --variants l6 --backends onnx --no-latency`` run (do not
    modify it: copy it first)."""
    out = tmp_path_factory.mktemp("minilm-pack") / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "packager.cli", "minilm", "--variants", "l6", "--backends", "onnx"]
    proc = subprocess.run(
        [*cmd, "--no-latency", "--out", str(out), "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"pack failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out
