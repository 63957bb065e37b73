"""Atomic file outputs and owned temporaries.

Outputs are written to a temporary sibling, fsynced, then renamed over the final name, so an interrupted
run never leaves a file under its final name that looks complete but is not.

Every temporary weightpack makes (atomic siblings, export staging folders, extraction and verification
folders) is named ``.<what>.<pid>-<random>.partial``: the pid of the process that owns it. A process killed
by SIGKILL cannot clean up, so :func:`sweep` (run at the start of each pack, verify-remote and upload)
removes the temporaries whose owner is no longer alive; one still in use is never touched. An owner is
alive only while it really runs: a zombie (dead, not yet reaped) is not, and neither is a new process that
reused the pid, told apart by its start time where the owner's was recorded (pack's lock stamp records
every process of its run, see :mod:`packager.outdir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

PARTIAL_SUFFIX = ".partial"
_OWNED = re.compile(r"^\..*\.(\d+)-[^.]*\.partial$")


def temp_prefix(what: str) -> str:
    """``.<what>.<pid>-``: the start of a temporary's name, before mkstemp/mkdtemp's random part."""
    return f".{what}.{os.getpid()}-"


def owner_pid(name: str) -> int | None:
    """The pid in an owned temporary's name, or None when ``name`` is not one."""
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None


START_TIME_SLACK_S = 0.05


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError, OverflowError):  # no such process, or no pid at all
        return None


def alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` runs: it exists, is no zombie, and started at ``started`` when that is known (a pid
    the kernel handed to a new process is not the owner come back)."""
    import psutil

    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) <= START_TIME_SLACK_S
    except (psutil.NoSuchProcess, ValueError, OverflowError):  # gone, or never a pid (a stamp is a hint)
        return False
    except (psutil.Error, OSError):  # another user's process we may not inspect: it runs
        return True


def sweep(folder: Path, recursive: bool = True, owners: Mapping[int, float] | None = None) -> list[Path]:
    """Remove the temporaries under ``folder`` whose owning process is gone; returns what was removed.
    ``owners``: pid -> start time of processes known to have made temporaries here (a reused pid is then
    told from its owner). Symbolic links are never followed."""
    owners = owners or {}
    removed: list[Path] = []
    stack = [Path(folder)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            pid = owner_pid(entry.name)
            if pid is not None and not alive(pid, owners.get(pid)):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                removed.append(Path(entry.path))
            elif recursive and entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return removed


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target``, whatever was there (a link to elsewhere, left by another
    run or planted, or a file): a link is trusted only for where it points now, never for existing."""
    link = Path(link)
    if link.is_symlink() and link.readlink() == Path(target):
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def new_temp_dir(parent: Path, what: str) -> Path:
    """A new owned temporary folder under ``parent`` (``.<what>.<pid>-<random>.partial``): the caller
    removes it; if this process dies first, :func:`sweep` does."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(what), suffix=PARTIAL_SUFFIX, dir=parent))


@contextlib.contextmanager
def temp_dir(parent: Path, what: str) -> Iterator[Path]:
    """An owned temporary folder under ``parent``, removed when the block ends (whatever way)."""
    path = new_temp_dir(parent, what)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``, on error delete it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(final.name), suffix=PARTIAL_SUFFIX, dir=final.parent)
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
