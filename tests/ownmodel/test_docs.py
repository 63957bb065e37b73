"""Every example in docs/your-own-model.md runs as written: blocks in order, in an empty folder.

Conventions of that page: a ``python`` or ``toml`` block whose first line is ``# file: PATH`` is written to
PATH; any other ``python`` block is run; each ``pack ...`` line of a ``bash`` block is run, expecting exit 0
unless the line ends with ``# exit N``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from packager.commands import find
from tests.ownmodel.helpers import ONET_PT, ROOT

DOC = ROOT / "docs" / "your-own-model.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (the example weights) is not installed"),
]


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_page_has_an_example_of_every_case() -> None:
    text = DOC.read_text()
    for case in (
        "[model]",
        ".onnx",
        "TorchScript",
        "shapes =",
        "dynamic_axes",
        "--threads",
        "# exit 2",
        "reference_class",
        ".jit",
        "pack inspect",
        "value = 16000",
        "batch_axis = 1",
        "state_from",
        "steps = 8",
        "reset_states",
        "adopt it as it is",
        "1x3x120x160",
    ):
        assert case in text, case
    kinds = [kind for kind, _ in blocks()]
    assert kinds.count("bash") >= 7 and "toml" in kinds and "python" in kinds


def test_every_example_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # weightpack's checkout only: the page's own modules must import from the working directory and
        # the recipe's folder without help (issue 20, point 4)
        "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT),
        "WEIGHTPACK_CACHE": str(tmp_path / ".cache"),
    }
    ran = 0
    for kind, body in blocks():
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith("# file: "):
            path = tmp_path / first.removeprefix("# file: ").strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif kind == "python":
            proc = subprocess.run(
                [sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert proc.returncode == 0, body + proc.stderr[-3000:]
        elif kind == "bash":
            for line in body.splitlines():
                if not line.startswith("pack "):
                    continue
                command, _, comment = line.partition("#")
                expected = int(m.group(1)) if (m := re.search(r"exit (\d+)", comment)) else 0
                args = shlex.split(command)[1:]
                verb = find(args[0]) is not None  # pack inspect ...: no output folder, no report
                proc = subprocess.run(
                    # the console script, as a user runs it (``python -m`` would put the folder on sys.path)
                    [
                        str(Path(sys.executable).parent / "pack"),
                        *args,
                        *([] if verb else ["--out", f"out/{args[0]}"]),
                    ],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                assert proc.returncode == expected, line + "\n" + proc.stdout[-2000:] + proc.stderr[-3000:]
                assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
                assert verb or (tmp_path / "out" / args[0] / "report.json").is_file()
                ran += 1
    assert ran >= 7
