"""Atomic file outputs: write to a temporary sibling, fsync, then rename over the final name.

An interrupted run therefore never leaves a file under its final name that looks complete but is not;
the temporary sibling (``.<name>.<random>.partial``) is removed on error and ignored by everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=PARTIAL_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(final: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``final`` for writing; it becomes ``final`` only if the block succeeds."""
    with atomic_path(final) as tmp, open(tmp, mode) as handle:
        yield handle


def write_text(final: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``final``."""
    with atomic_open(final, "w") as handle:
        handle.write(text)


def write_json(final: Path, data: Any) -> None:
    """Atomically write ``data`` as stable, indented JSON (sorted keys, trailing newline)."""
    write_text(final, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
