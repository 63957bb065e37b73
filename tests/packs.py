"""Real ``pack`` runs for tests: one helper to run the CLI as a user does, and one session-scoped pack per
family and backend set, shared by every test that needs it (registered as a plugin in tests/conftest.py).

A test that uses one of these fixtures runs real weights end to end, so it is marked ``slow``
automatically (``scripts/test.sh --fast`` skips it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SESSION_PACKS = ("minilm_pack_onnx", "onet_pack_onnx", "vad_pack_onnx")
"""Fixtures that run a real pack: the tests using them are marked ``slow``."""


def pack_process(
    *args: str, cwd: Path = ROOT, timeout: float = 600, python_args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``pack ARGS`` in a separate process, offline, as a user runs it (``python_args``: interpreter
    options, such as ``-X importtime``)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *python_args, "-m", "packager.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_pack(out: Path, *args: str) -> dict:
    """``pack minilm --variants l6 --out OUT --quiet ARGS``, which must pass; returns its report.json."""
    proc = pack_process("minilm", "--variants", "l6", "--out", str(out), "--quiet", *args)
    assert proc.returncode == 0, f"pack failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="session")
def minilm_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack minilm --variants l6 --backends onnx`` output folder (report.json with latency, zip,
    manifest, goldens). Shared by the whole session: copy it before changing anything in it."""
    out = tmp_path_factory.mktemp("minilm-pack-onnx") / "out"
    report = run_pack(out, "--backends", "onnx")
    assert report["passed"]
    return out


def _pack_once(tmp_path_factory: pytest.TempPathFactory, family: str, variant: str, backend: str) -> Path:
    out = tmp_path_factory.mktemp(f"{family}-{variant}-{backend}") / "out"
    proc = pack_process(family, "--variants", variant, "--backends", backend, "--out", str(out), "--quiet")
    assert proc.returncode == 0, f"pack failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return out


@pytest.fixture(scope="session")
def onet_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack mtcnn --variants onet --backends onnx`` output folder (a small CNN: seconds), shared
    by the whole session: copy it before changing anything in it."""
    return _pack_once(tmp_path_factory, "mtcnn", "onet", "onnx")


@pytest.fixture(scope="session")
def vad_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack silero_vad --variants onnx --backends onnx`` output folder (a recurrent model checked
    over a sequence of 8 calls), shared by the whole session: copy it before changing anything in it."""
    return _pack_once(tmp_path_factory, "silero_vad", "onnx", "onnx")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a session pack ``slow``: it runs real weights end to end."""
    for item in items:
        if set(SESSION_PACKS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
