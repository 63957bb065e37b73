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

import argparse
import contextlib
import errno
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

from filelock import FileLock, Timeout

from packager.atomic import PARTIAL_SUFFIX, alive, start_time, sweep, temp_prefix, write_json
from packager.errors import UsageError

LOCK_NAME = ".pack.lock"
OWNER_NAME = ".pack.lock.json"
UPSTREAM = ".upstream"
DEAD_RUN_WAIT_S = 10.0
MAX_STAMPED = 256  # more processes than any run has: a longer list in a stamp is not read


class OutputFolderError(UsageError):
    """The output folder cannot be used: not a folder, not writable, or held by another run."""


ACCEPTED = "(accepted: a writable folder, new or existing)"


def check_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` if needed; a clear error when it is a file, under a file or not writable, or when
    its lock or owner stamp is a symbolic link (the stamp was written through one, over its target; filelock
    refuses to open a linked lock, which surfaced as an unexpected OSError)."""
    out_dir = check_folder(out_dir, "--out")
    for name in (LOCK_NAME, OWNER_NAME):
        if (out_dir / name).is_symlink():
            raise OutputFolderError(
                f"--out {out_dir}: {name} is a symbolic link; pack never writes through one "
                "(accepted: remove it, or choose another --out)"
            )
    return out_dir


def check_folder(folder: Path, flag: str, create: bool = True) -> Path:
    """A folder a run will write into, checked before any work: not a file, not under a file, writable
    (a probe file is created and removed). ``create``: make it now; otherwise only the nearest existing
    folder above it is probed, and nothing is left behind when the run never gets that far."""
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise OutputFolderError(f"{flag} {folder}: is an existing file, not a folder {ACCEPTED}")
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        existing = folder
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
        fd, probe = tempfile.mkstemp(prefix=temp_prefix("write-probe"), suffix=PARTIAL_SUFFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except (NotADirectoryError, FileExistsError):
        raise OutputFolderError(f"{flag} {folder}: a parent of it is a file {ACCEPTED}") from None
    except OSError as exc:
        why = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system"}.get(
            exc.errno, exc.strerror or str(exc)
        )
        raise OutputFolderError(f"{flag} {folder}: cannot be written ({why}) {ACCEPTED}") from None
    return folder


def planted_links(out_dir: Path) -> list[str]:
    """Symbolic links under ``out_dir`` that lead outside it (or nowhere) and that no run made: a planted
    ``goldens`` link would carry the run's writes elsewhere. The file links of ``.upstream/`` are the
    fetched files' view (``pipeline.upstream_view`` re-points each one it uses); links inside the folder
    (a download cache kept under it) cannot carry a write out."""
    found = []
    root = Path(out_dir).resolve()
    for directory, dirs, files in os.walk(out_dir):
        rel = Path(directory).relative_to(out_dir)
        for name in dirs + files:
            path = Path(directory) / name
            if not path.is_symlink() or (rel.parts[:1] == (UPSTREAM,) and name in files):
                continue
            try:
                inside = path.resolve(strict=True).is_relative_to(root)
            except (OSError, RuntimeError):  # dangling, or a loop
                inside = False
            if not inside:
                found.append(f"{(rel / name).as_posix()} -> {os.readlink(path)}")
    return sorted(found)


def refuse_shared_folder(folder: Path, flag: str, example: str) -> None:
    """A folder pack locks, sweeps of dead temporaries and fills must be one of its own: not the working
    directory, the home folder, the file system root or a folder above one of them."""
    folder = Path(folder).resolve()
    shared = {"the working directory": Path.cwd().resolve(), "your home folder": Path.home().resolve()}
    what = next((name for name, other in shared.items() if folder == other), None)
    what = what or next(
        (f"a folder above {n}" for n, other in shared.items() if folder in other.parents), None
    )
    if what:
        raise OutputFolderError(
            f"{flag} {folder}: is {what}; pack locks it, sweeps it of dead temporaries and fills it "
            f"(accepted: a folder of its own, e.g. {example})"
        )


def path_argument(value: str) -> Path:
    """argparse type of a folder flag: an empty value is refused (``Path("")`` is the working directory)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path (accepted: a folder, e.g. out/minilm)")
    return Path(value)


def _read_stamp(out_dir: Path) -> dict:
    try:
        data = json.loads((out_dir / OWNER_NAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _processes(stamp: dict) -> dict[int, float]:
    """pid -> start time of every process a stamp names (the run's main process and its workers)."""
    entries = stamp.get("processes")
    found = {}
    for entry in entries[:MAX_STAMPED] if isinstance(entries, list) else []:  # a stamp is only a hint
        with contextlib.suppress(KeyError, TypeError, ValueError, OverflowError):
            found[int(entry["pid"])] = float(entry["create_time"])
    return found


def _holder(out_dir: Path) -> str:
    stamp = _read_stamp(out_dir)
    if "pid" not in stamp:
        return "another process"
    others = sorted(set(_processes(stamp)) - {stamp["pid"]})
    workers = f", with worker process(es) {', '.join(map(str, others))}" if others else ""
    return f"pid {stamp['pid']}, started {stamp.get('started')}{workers}"


def record_processes(out_dir: Path, pids: list[int]) -> None:
    """Name more processes of this run (``--jobs`` workers) in the lock stamp of ``out_dir``, when this
    process holds it: a later run then tells their temporaries from those of a new process with a reused
    pid, and waits for them to be gone."""
    path = Path(out_dir) / OWNER_NAME
    stamp = _read_stamp(Path(out_dir))
    if stamp.get("pid") != os.getpid():
        return
    known = _processes(stamp)
    for pid in pids:
        started = start_time(pid)
        if started is not None:
            known[pid] = started
    stamp["processes"] = [{"pid": pid, "create_time": started} for pid, started in sorted(known.items())]
    write_json(path, stamp)


def _wait_for(processes: dict[int, float], timeout_s: float) -> None:
    """Give the processes of a killed run a moment to be gone (its workers die with it, see
    ``packager.jobs``); a temporary of one still running afterwards is kept by the sweep."""
    deadline = time.monotonic() + timeout_s
    while any(alive(pid, started) for pid, started in processes.items()) and time.monotonic() < deadline:
        time.sleep(0.1)


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
        links = planted_links(out_dir)
        if links:
            raise OutputFolderError(
                f"--out {out_dir}: holds symbolic links that no pack run made ({'; '.join(links[:5])}); "
                "pack writes only through real folders (accepted: remove them, or choose another --out)"
            )
        previous = _processes(_read_stamp(out_dir))  # a killed run's, or nothing
        owner = {
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": [Path(sys.argv[0]).name],
            "processes": [{"pid": os.getpid(), "create_time": start_time(os.getpid())}],
        }
        write_json(out_dir / OWNER_NAME, owner)
        _wait_for(previous, DEAD_RUN_WAIT_S)
        sweep(out_dir, owners=previous)
    except BaseException:
        release()
        raise
    return out_dir, release
