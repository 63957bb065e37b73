"""The thread settings wait for torch's import and apply on it, even when something asks where torch is
first: transformers' ``is_torch_available`` calls ``importlib.util.find_spec("torch")``, which used to
spend the one-shot hook on a spec nobody loaded, so every HF package ran with torch's default threads
(2 here, intra_op 1 recorded): CPU time per call 5-10x the torch package's on a busy machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _threads_after(code: str) -> list[str]:
    prelude = "from bench.threads import ThreadSettings, apply_threads\napply_threads(ThreadSettings(1, 1))\n"
    proc = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_a_find_spec_before_the_import_does_not_spend_the_hook() -> None:
    code = "import importlib.util\nimportlib.util.find_spec('torch')\n"
    code += "import torch\nprint(torch.get_num_threads())\n"
    assert _threads_after(code) == ["1"]


def test_transformers_first_then_torch() -> None:
    code = (
        "import transformers\nimport torch\nprint(torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    assert _threads_after(code) == ["1", "1"]
