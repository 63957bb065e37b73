"""Reach the consumer: in this interpreter when ``inference_models`` imports here, else in the consumer's
own venv (``$WEIGHTPACK_CONSUMER_PYTHON``, else ``.venv-consumer/bin/python`` beside this checkout), where
``python -m packager.consumer.probe`` answers one JSON request.

The consumer pins libraries older than weightpack's main environment (transformers<5.16, rich<15, ...), so
it usually lives in a venv of its own; scripts/setup_consumer.sh makes it, with weightpack installed there
too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from backends.errors import ConsumerUnavailableError

ROOT = Path(__file__).resolve().parents[2]
ENV_PYTHON = "WEIGHTPACK_CONSUMER_PYTHON"
HOW_TO_INSTALL = (
    "the consumer (inference-models) is not installed: run scripts/setup_consumer.sh (creates "
    ".venv-consumer) or point $WEIGHTPACK_CONSUMER_PYTHON at a python that has inference-models"
)


def consumer_python() -> str | None:
    """The interpreter that has ``inference_models``: this one, ``$WEIGHTPACK_CONSUMER_PYTHON`` or
    ``.venv-consumer/bin/python``; None when there is none."""
    if importlib.util.find_spec("inference_models") is not None:
        return sys.executable
    candidates = [os.environ.get(ENV_PYTHON, ""), str(ROOT / ".venv-consumer" / "bin" / "python")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def available() -> bool:
    return consumer_python() is not None


def ask(command: str, request: dict[str, Any], *, timeout_s: float = 600) -> dict[str, Any]:
    """Run one probe command with the consumer; ConsumerUnavailableError when there is no consumer,
    RuntimeError with the consumer's own message when the probe failed."""
    python = consumer_python()
    if python is None:
        raise ConsumerUnavailableError(HOW_TO_INSTALL)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [python, "-m", "packager.consumer.probe", command],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout_s,
        check=False,
    )
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    except ValueError:
        answer = None
    if proc.returncode != 0 or not isinstance(answer, dict):
        raise RuntimeError(
            f"consumer probe '{command}' failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    if "error" in answer and len(answer) == 1:
        raise RuntimeError(f"consumer probe '{command}': {answer['error']}")
    return answer
