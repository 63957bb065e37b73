"""The sha256 of each source file, remembered in a JSON sidecar (``hashes.json`` in the cache).

The cache is evidence, not truth: the hashes become provenance (report.json, every manifest), so an entry
is used only when it is still about the same bytes and was written by weightpack. Each entry records what
was hashed: the real path, size, ``mtime_ns``, inode, device and ``ctime_ns`` (which no user can set: a
file rewritten and its mtime put back, or a cache copied from elsewhere, no longer matches), and a MAC of
all of it keyed by ``hashes.key`` (random, created beside it, readable by its owner only), so an entry
edited in place (every sha256 set to zeros) is not believed either. In doubt, the file is hashed again.

The hashing itself is :func:`packager.hashing.sha256_file`, like every other file hash of weightpack.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from .. import atomic
from ..errors import SourceError, disk_cause
from ..hashing import sha256_file

HASHES_FILE = "hashes.json"
KEY_FILE = "hashes.key"
KEY_BYTES = 32


def _identity(stat: os.stat_result) -> dict[str, int]:
    """What must not have changed since a file was hashed."""
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
        "device": stat.st_dev,
    }


class HashCache:
    """Remembers sha256 per file so a refetch of an unchanged snapshot does not re-hash it.

    Entries are keyed by the file's real path; one is used only when the file's identity (size, times,
    inode) is what was hashed and its MAC holds (see the module docstring).
    """

    def __init__(self, cache_dir: Path) -> None:
        self.file = Path(cache_dir) / HASHES_FILE
        self._lock = FileLock(str(self.file) + ".lock")
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False
        self._key: bytes | None = None

    def _mac(self, real: str, identity: dict[str, int], digest: str) -> str | None:
        """The entry's MAC, None when there is no usable key (then nothing cached is believed)."""
        if self._key is None:
            self._key = load_key(self.file.with_name(KEY_FILE))
        if not self._key:
            return None
        message = json.dumps([real, identity, digest], sort_keys=True).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = _read_entries(self.file)
        return self._entries

    def sha256(self, path: Path) -> tuple[int, str]:
        """Return ``(size, sha256)`` of ``path``: from the cache when the entry is about these very bytes
        and its MAC holds, else hashed now (and remembered)."""
        real = os.path.realpath(path)
        stat = os.stat(real)
        identity = _identity(stat)
        entry = self._load().get(real)
        if isinstance(entry, dict) and {k: entry.get(k) for k in identity} == identity:
            digest = str(entry.get("sha256"))
            mac = self._mac(real, identity, digest)
            if mac is not None and hmac.compare_digest(mac, str(entry.get("mac"))):
                return stat.st_size, digest
        digest = sha256_file(Path(real))
        if _identity(os.stat(real)) == identity:  # unchanged while it was read: worth remembering
            self._remember(real, identity, digest)
        return stat.st_size, digest

    def put(self, path: Path, digest: str) -> None:
        """Remember ``digest`` for ``path``, which the caller has just hashed."""
        real = os.path.realpath(path)
        self._remember(real, _identity(os.stat(real)), digest)

    def _remember(self, real: str, identity: dict[str, int], digest: str) -> None:
        mac = self._mac(real, identity, digest)
        if mac is not None:
            self._load()[real] = {**identity, "sha256": digest, "mac": mac}
            self._dirty = True

    def save(self) -> None:
        """Merge this session's entries into the sidecar (locked, atomic). A sidecar that cannot be written
        (a folder where it belongs, a full disk) is skipped: it only saves hashing next time."""
        if not self._dirty or self._entries is None:
            return
        with contextlib.suppress(OSError):
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                on_disk = _read_entries(self.file)
                on_disk.update(self._entries)
                # Drop entries whose file is gone, so the sidecar does not grow forever.
                on_disk = {k: v for k, v in on_disk.items() if os.path.exists(k)}
                atomic.write_json(self.file, on_disk)
        self._dirty = False


def _read_entries(path: Path) -> dict[str, Any]:
    """The sidecar's entries; {} for anything that is not a JSON object (missing, garbage, nested too
    deep to read): the cache is a hint, never a reason to fail."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def load_key(path: Path) -> bytes:
    """The cache's MAC key, created on first use (owner-only, atomic); empty bytes when it cannot be read
    or made (a read-only cache: nothing is remembered, everything is hashed). The one key of a cache folder:
    the hash cache's entries and the records a re-run reuses (:mod:`packager.seal`) are sealed with it."""
    try:
        with contextlib.suppress(FileNotFoundError, ValueError):
            key = bytes.fromhex(path.read_text("ascii").strip())
            if len(key) == KEY_BYTES:
                return key
        with atomic.atomic_open(path, "w") as handle:  # 0600, like every atomic temporary
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        return bytes.fromhex(path.read_text("ascii").strip())
    except (OSError, ValueError):
        return b""


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
        try:
            size, digest = cache.sha256(full)
        except OSError as exc:  # the source's file, not our output: bad input, not a full disk
            if disk_cause(exc) is not None:
                raise
            raise SourceError(
                f"{full}: cannot be read ({exc.strerror or exc}); a source must be readable regular files"
            ) from None
        records.append({"path": rel, "size": size, "sha256": digest})
    records.sort(key=lambda r: r["path"])
    return records
