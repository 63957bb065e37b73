"""The ``--out`` folder: checked before anything is built, locked for the whole run, swept of temporaries.

Two ``pack`` runs writing one folder would overwrite each other's zips and leave a report that lists only
one run's packages, so a run holds ``OUT/.pack.lock`` (a ``filelock`` lock, released by the kernel if the
process dies) from start to finish. A second run is refused with a message naming the holder, or waits
for it with ``--wait``. Holding the lock, the run then removes the temporaries that killed runs left
behind (see :func:`packager.atomic.sweep`).

"From start to finish" is the whole command, not only the pack: the steps after it (upload, register, the
publish state, fixtures, ``profile.json``) write into the folder too. The CLI runs the command inside
:func:`held_until_end`; a :func:`claim` made inside it (the pack's) keeps the lock until that block ends,
and a claim of a folder it already holds re-enters. Outside such a block every claim is its own, so a
second claim of a held folder is refused as a second run's would be.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

from filelock import FileLock, Timeout

from packager.atomic import sweep
from packager.errors import UsageError

LOCK_NAME = ".pack.lock"
OWNER_NAME = ".pack.lock.json"


class OutputFolderError(UsageError):
    """The output folder cannot be used: not a folder, not writable, or held by another run."""


def check_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` if needed; a clear error when it is a file, under a file or not writable."""
    out_dir = Path(out_dir)
    accepted = "(accepted: a writable folder, new or existing)"
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"--out {out_dir}: is an existing file, not a folder {accepted}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / LOCK_NAME
        with open(probe, "a"):
            pass
    except (NotADirectoryError, FileExistsError):
        raise OutputFolderError(f"--out {out_dir}: a parent of it is a file {accepted}") from None
    except OSError as exc:
        why = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system"}.get(
            exc.errno, exc.strerror or str(exc)
        )
        raise OutputFolderError(f"--out {out_dir}: cannot be written ({why}) {accepted}") from None
    return out_dir


def _holder(out_dir: Path) -> str:
    try:
        data = json.loads((out_dir / OWNER_NAME).read_text(encoding="utf-8"))
        return f"pid {data['pid']}, started {data['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class _Scope:
    """The folders claimed inside one :func:`held_until_end` block: resolved path -> its release."""

    def __init__(self) -> None:
        self.held: dict[str, Callable[[], None]] = {}

    def release_all(self) -> None:
        while self.held:
            _, release = self.held.popitem()
            release()


_SCOPE: ContextVar[_Scope | None] = ContextVar("weightpack_out_scope", default=None)


@contextlib.contextmanager
def held_until_end() -> Iterator[None]:
    """Every folder claimed inside this block stays claimed until the block ends (however it ends): a
    command's steps after the pack run while the pack's claim still holds the folder."""
    scope = _Scope()
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        scope.release_all()


@contextlib.contextmanager
def claim(out_dir: Path, wait: bool = False) -> Iterator[Path]:
    """Hold ``out_dir`` for one run: checked, locked (refused or waited for), swept of dead temporaries.
    Inside :func:`held_until_end` the lock outlives this block, and a folder held there already re-enters."""
    scope = _SCOPE.get()
    key = str(Path(out_dir).resolve())
    if scope is not None and key in scope.held:
        yield Path(out_dir)  # this command holds it already
        return
    out_dir, release = _acquire(out_dir, wait)
    if scope is not None:
        scope.held[key] = release  # released when the command's block ends
        yield out_dir
        return
    try:
        yield out_dir
    finally:
        release()


def _acquire(out_dir: Path, wait: bool) -> tuple[Path, Callable[[], None]]:
    """Check and lock ``out_dir``, record this process as its holder, sweep it; returns the release."""
    out_dir = check_out_dir(out_dir)
    lock = FileLock(str(out_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise OutputFolderError(
            f"--out {out_dir}: another pack run ({_holder(out_dir)}) is writing this folder; "
            "wait for it to finish, pass --wait to start when it does, or choose another --out"
        ) from None

    def release() -> None:
        with contextlib.suppress(OSError):
            (out_dir / OWNER_NAME).unlink()
        lock.release()

    try:
        owner = {
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": [Path(sys.argv[0]).name],
        }
        (out_dir / OWNER_NAME).write_text(json.dumps(owner) + "\n", encoding="utf-8")
        sweep(out_dir)
    except BaseException:
        release()
        raise
    return out_dir, release
