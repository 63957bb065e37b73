"""Fixtures for the conformance suite: the real consumer (inference-models 0.39.6) in its own venv.

CI makes ``.venv-consumer`` with scripts/setup_consumer.sh (called by scripts/setup.sh). Without it the
tests that need the consumer skip with a reason that says so, except where ``WEIGHTPACK_REQUIRE_CONSUMER=1``
(scripts/test.sh sets it unless ``WEIGHTPACK_SKIP_CONSUMER=1``): there a missing consumer fails them, so
a CI run can never go green without running the conformance suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from packager.consumer import bridge
from tests.packs import built_once, pack_process


@pytest.fixture(scope="session")
def consumer() -> str:
    python = bridge.consumer_python()
    if python is None:
        if os.environ.get("WEIGHTPACK_REQUIRE_CONSUMER") == "1":
            pytest.fail(f"WEIGHTPACK_REQUIRE_CONSUMER=1 but the consumer is missing: {bridge.HOW_TO_INSTALL}")
        pytest.skip(bridge.HOW_TO_INSTALL)
    return python


@pytest.fixture(scope="session")
def ppocr_packed(consumer: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pack ppocr --no-latency`` run by the consumer's venv (the verification goes through the consumer's
    class), once for the session: copy it before changing anything in it (a registration writes its state
    there)."""

    def build(folder: Path) -> None:
        out = folder / "out"
        args = ("ppocr", "--out", str(out), "--no-latency", "--quiet")
        proc = pack_process(*args, python=consumer, script=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    return built_once(tmp_path_factory, "ppocr", build) / "out"
