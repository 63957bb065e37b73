"""Deterministic, streaming, atomic zip building.

Byte-for-byte reproducible for the same tree (and the same zlib): members sorted by path, no directory
entries (every file's path implies its folders; empty directories are refused by the layout rules), a fixed
timestamp (1980-01-01 00:00:00), fixed attributes (regular file 0o644, create_system 3 = Unix), no extra
fields beyond the zip64 one that large members need, a fixed deflate level. Mtimes, modes, umask, listing
order and the destination path do not reach the bytes.

Each source byte is read once, into a pooled buffer that feeds the zip member (CRC + write on this thread)
and the file's md5/sha256 (worker threads); the zip's own md5/sha256 are taken from the output stream as it
is written (see :class:`~packager.hashing.HashingWriter`, which is why members carry data descriptors), on
other worker threads, from the same buffers. Nothing is re-read or copied (see :mod:`packager.hashing`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backends import files
from packager.archive._rules import scan_tree
from packager.atomic import atomic_path
from packager.errors import ArchiveError
from packager.hashing import BufferPool, HashingWriter, StreamHasher, pooled_chunks

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_ATTR = (stat.S_IFREG | 0o644) << 16
CREATE_SYSTEM_UNIX = 3
DEFLATE_LEVEL = 6

# Always STORED, whatever compress_patterns says: incompressible, and stored members extract at copy speed.
# The weight formats are backends.files' one list; arrays (goldens, anchors) are added here.
WEIGHT_PATTERNS: tuple[str, ...] = (*files.WEIGHT_PATTERNS, "*.npz", "*.npy")
# DEFLATED (matched case-insensitively against the file's base name); everything else is STORED.
DEFAULT_COMPRESS: tuple[str, ...] = (
    "*.json",
    "*.txt",
    "*.md",
    "*.yaml",
    "*.yml",
    "*.py",
    "*.csv",
    "*.tsv",
    "*.cfg",
    "*.ini",
    "*.toml",
    "*.jinja",
    "*.xml",
    ".gitattributes",
    "README*",
    "LICENSE*",
)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    md5: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ZipResult:
    zip_path: Path
    size: int
    md5: str
    sha256: str
    files: list[FileEntry]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def compression_for(path: str, compress_patterns: Sequence[str] = DEFAULT_COMPRESS) -> int:
    """ZIP_DEFLATED for names matching ``compress_patterns`` and no weight pattern, else ZIP_STORED."""
    name = path.rsplit("/", 1)[-1]
    if _matches(name, WEIGHT_PATTERNS) or not _matches(name, compress_patterns):
        return zipfile.ZIP_STORED
    return zipfile.ZIP_DEFLATED


def _zipinfo(path: str, size: int, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=FIXED_DATE_TIME)
    info.create_system = CREATE_SYSTEM_UNIX
    info.external_attr = FILE_ATTR
    info.compress_type = compress_type
    info.file_size = size
    if compress_type == zipfile.ZIP_DEFLATED:
        if hasattr(info, "compress_level"):  # Python >= 3.13
            info.compress_level = DEFLATE_LEVEL
        else:
            info._compresslevel = DEFLATE_LEVEL  # type: ignore[attr-defined]
    return info


def _write_member(
    zf: zipfile.ZipFile, rel: str, src: Path, compress_type: int, hasher: StreamHasher, pool: BufferPool
) -> FileEntry:
    with open(src, "rb", buffering=0) as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArchiveError(f"{rel!r}: is no longer a regular file (accepted: regular files)")
        expected = st.st_size
        info = _zipinfo(rel, expected, compress_type)
        # Deflate can grow incompressible data a little; zipfile uses the same 5% margin.
        force_zip64 = expected * 1.05 > zipfile.ZIP64_LIMIT
        written = 0
        with zf.open(info, "w", force_zip64=force_zip64) as member, pooled_chunks(handle, pool) as chunks:
            for chunk in chunks:
                hasher.update(chunk)
                member.write(chunk)
                written += len(chunk)
    md5, sha256 = hasher.hexdigests()
    if written != expected:
        raise ArchiveError(
            f"{rel!r}: changed size while being packaged ({expected} -> {written} bytes) "
            "(accepted: a tree nothing else writes to during packaging)"
        )
    return FileEntry(rel, written, md5, sha256)


def build_zip(root: Path, dest: Path, *, compress_patterns: Sequence[str] = DEFAULT_COMPRESS) -> ZipResult:
    """Zip the package tree ``root`` into ``dest`` (atomically), returning sizes and hashes of all of it."""
    root, dest = Path(root), Path(dest)
    files, problems = scan_tree(root)
    if problems:
        listing = "\n  - ".join(str(p) for p in problems)
        raise ArchiveError(f"{root}: refusing to package, {len(problems)} layout problem(s):\n  - {listing}")
    if dest.resolve().is_relative_to(root.resolve()):
        raise ArchiveError(
            f"{dest}: the zip would land inside the tree it packages (accepted: a path outside {root})"
        )
    entries: list[FileEntry] = []
    with atomic_path(dest) as tmp, contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(tmp, "wb"))
        pool = BufferPool()
        zip_hasher = stack.enter_context(StreamHasher(pool=pool))
        file_hasher = stack.enter_context(StreamHasher(pool=pool))
        out = HashingWriter(raw, zip_hasher)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:  # type: ignore[arg-type]
            for rel, src in files:
                method = compression_for(rel, compress_patterns)
                entries.append(_write_member(zf, rel, src, method, file_hasher, pool))
        raw.flush()
        size = out.tell()
        md5, sha256 = zip_hasher.hexdigests()
    return ZipResult(zip_path=dest, size=size, md5=md5, sha256=sha256, files=entries)
