"""Running ``pack`` as a user does: a child process, its exit code and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pack(
    *args: str,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: int = 600,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """``python -m packager.cli ARGS`` from ``cwd`` (the repository root)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "packager.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


def recipe_copy(tmp: Path, edit: Callable[[str], str] = lambda t: t, family: str = "minilm") -> Path:
    """A recipes folder holding an edited copy of a built-in recipe."""
    folder = tmp / "recipes"
    folder.mkdir(exist_ok=True)
    text = (ROOT / "recipes" / f"{family}.toml").read_text(encoding="utf-8")
    (folder / f"{family}.toml").write_text(edit(text), encoding="utf-8")
    return folder


def clean_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code``, one ``pack: error:`` naming every needle, and no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "pack: error:" in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-3000:])
