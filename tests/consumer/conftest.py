"""Fixtures for the conformance suite: the real consumer (inference-models 0.39.6) in its own venv.

CI makes ``.venv-consumer`` with scripts/setup_consumer.sh (called by scripts/setup.sh); without it every
test that needs the consumer skips with a reason that says so.
"""

from __future__ import annotations

import pytest

from backends.consumer import bridge


@pytest.fixture(scope="session")
def consumer() -> str:
    python = bridge.consumer_python()
    if python is None:
        pytest.skip(bridge.HOW_TO_INSTALL)
    return python
