"""Running ``pack`` as a user does: a child process, its exit code and its output (tests.packs)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.packs import ROOT, pack_process


def pack(
    *args: str,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: int = 600,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """``pack ARGS`` from ``cwd`` (the repository root) in a child process: offline, ``env`` on top of
    nothing of the caller's (tests.packs.pack_process)."""
    return pack_process(*args, env=env, preexec=preexec, timeout=timeout, cwd=cwd)


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
