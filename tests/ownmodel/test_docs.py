"""Every example in docs/your-own-model.md runs as written: blocks in order, in an empty folder.

Conventions of that page: a ``python`` or ``toml`` block whose first line is ``# file: PATH`` is written to
PATH; any other ``python`` block is run; each ``pack ...`` line of a ``bash`` block is run, expecting exit 0
unless the line ends with ``# exit N``.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from packager.commands import find
from tests.ownmodel.helpers import ONET_PT, ROOT
from tests.packs import pack_in_process, pack_process

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


def run_block(body: str, folder: Path) -> None:
    """A ``python`` block run as ``python -c`` runs it from ``folder`` (the folder first on sys.path), in this
    process: the working directory, sys.path and the modules it imported from ``folder`` are undone."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(folder)
            sys.path.insert(0, str(folder))
            exec(compile(body, "<python block>", "exec"), {"__name__": "__main__"})
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(folder)):
                del sys.modules[name]


def test_every_example_runs(tmp_path: Path) -> None:
    """The page's first ``pack`` line runs through the console script as a user types it, with weightpack's
    checkout only on PYTHONPATH: the page's own modules import from the working directory and the recipe's
    folder without help (issue 20, point 4; tests/ownmodel/test_import_path.py holds it for both folders).
    The other lines run the same argv in this process (tests.packs.pack_in_process), in the same folder."""
    ran = 0
    for kind, body in blocks():
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith("# file: "):
            path = tmp_path / first.removeprefix("# file: ").strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif kind == "python":
            run_block(body, tmp_path)
        elif kind == "bash":
            for line in body.splitlines():
                if not line.startswith("pack "):
                    continue
                command, _, comment = line.partition("#")
                expected = int(m.group(1)) if (m := re.search(r"exit (\d+)", comment)) else 0
                args = shlex.split(command)[1:]
                verb = find(args[0]) is not None  # pack inspect ...: no output folder, no report
                argv = [*args, *([] if verb else ["--out", f"out/{args[0]}"])]
                if ran == 0:  # the console script (``python -m`` would put the folder on sys.path)
                    proc = pack_process(*argv, cwd=tmp_path, script=True)
                else:
                    proc = pack_in_process(*argv, cwd=tmp_path)
                assert proc.returncode == expected, line + "\n" + proc.stdout[-2000:] + proc.stderr[-3000:]
                assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
                assert verb or (tmp_path / "out" / args[0] / "report.json").is_file()
                ran += 1
    assert ran >= 7
