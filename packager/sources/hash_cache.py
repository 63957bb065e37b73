"""The sha256 of each source file, remembered in a JSON sidecar keyed by (real path, size, mtime_ns).

The hashing itself is :func:`packager.hashing.sha256_file`, like every other file hash of weightpack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from .. import atomic
from ..hashing import sha256_file

HASHES_FILE = "hashes.json"


class HashCache:
    """Remembers sha256 per file so a refetch of an unchanged snapshot does not re-hash it.

    Entries are keyed by the file's real path and invalidated when its size or mtime_ns changes.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.file = Path(cache_dir) / HASHES_FILE
        self._lock = FileLock(str(self.file) + ".lock")
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            try:
                data = json.loads(self.file.read_text("utf-8"))
                self._entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def sha256(self, path: Path) -> tuple[int, str]:
        """Return ``(size, sha256)`` of ``path``, from the cache when its size and mtime still match."""
        real = os.path.realpath(path)
        stat = os.stat(real)
        entries = self._load()
        entry = entries.get(real)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return stat.st_size, str(entry["sha256"])
        digest = sha256_file(Path(real))
        self.put(Path(real), digest)
        return stat.st_size, digest

    def put(self, path: Path, digest: str) -> None:
        real = os.path.realpath(path)
        stat = os.stat(real)
        self._load()[real] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True

    def save(self) -> None:
        """Merge this session's entries into the sidecar (locked, atomic)."""
        if not self._dirty or self._entries is None:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            try:
                on_disk = json.loads(self.file.read_text("utf-8"))
                if not isinstance(on_disk, dict):
                    on_disk = {}
            except (OSError, ValueError):
                on_disk = {}
            on_disk.update(self._entries)
            # Drop entries whose file is gone, so the sidecar does not grow forever.
            on_disk = {k: v for k, v in on_disk.items() if os.path.exists(k)}
            atomic.write_json(self.file, on_disk)
        self._dirty = False


def iter_files(root: Path) -> Iterable[tuple[str, Path]]:
    """Yield ``(relative posix path, path)`` for every file under ``root`` (following file symlinks)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file():
                yield full.relative_to(root).as_posix(), full


def file_records(items: Iterable[tuple[str, Path]], cache: HashCache) -> list[dict[str, Any]]:
    """Provenance records ``{"path", "size", "sha256"}`` sorted by path."""
    records = []
    for rel, full in items:
        size, digest = cache.sha256(full)
        records.append({"path": rel, "size": size, "sha256": digest})
    records.sort(key=lambda r: r["path"])
    return records
