"""Safe extraction and zip validation.

``safe_extract`` trusts nothing in the zip: names are checked against the layout rules (no escapes, no
absolute paths, no links, no duplicates), declared sizes against limits (total, member count, per-member
compression ratio), and each member is decompressed by a small reader of its own that counts the bytes it
produces and stops the moment a member expands past its declared size (``zipfile`` would silently truncate
there instead). Everything goes into a temporary sibling of ``dest`` that is renamed into place only once
every member has been written and its CRC checked; on any failure the temporary directory is removed.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

from packager.archive._rules import zip_problems
from packager.errors import ArchiveError, UnsafeArchiveError
from packager.hashing import CHUNK_SIZE

# Members smaller than this are not held to max_ratio: a 100 kB JSON of repeated keys may legitimately
# compress 300:1, and small members cannot make a bomb (the total is bounded by max_total_bytes anyway).
RATIO_MIN_BYTES = 1 << 20

_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_LOCAL_SIG = b"PK\x03\x04"
_FLAG_ENCRYPTED = 0x1
_FLAG_UTF8 = 0x800


def _read_infos(zip_path: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"{zip_path}: not a readable zip ({exc}) (accepted: a zip file)") from exc


def validate_zip(zip_path: Path) -> list[str]:
    """The layout rules of :func:`validate_tree`, checked on a zip's member names; [] when it is fine."""
    try:
        infos = _read_infos(Path(zip_path))
    except ArchiveError as exc:
        return [str(exc)]
    return [str(p) for p in zip_problems(infos)]


def _check_members(
    zip_path: Path, infos: list[zipfile.ZipInfo], max_total_bytes: int, max_ratio: float, max_files: int
) -> None:
    if len(infos) > max_files:
        raise UnsafeArchiveError(
            f"{zip_path}: holds {len(infos)} members, over the limit (accepted: at most {max_files})"
        )
    problems = zip_problems(infos)
    if problems:
        cls = UnsafeArchiveError if any(p.unsafe for p in problems) else ArchiveError
        listing = "\n  - ".join(str(p) for p in problems)
        raise cls(f"{zip_path}: refusing to extract, {len(problems)} problem(s):\n  - {listing}")
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise UnsafeArchiveError(
            f"{zip_path}: declares {total} bytes uncompressed (accepted: at most {max_total_bytes})"
        )
    for info in infos:
        if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise UnsafeArchiveError(
                f"{info.filename!r}: compression ratio {ratio:.0f}:1 looks like a zip bomb "
                f"(accepted: at most {max_ratio:g}:1 for members over {RATIO_MIN_BYTES} bytes)"
            )
        if info.flag_bits & _FLAG_ENCRYPTED:
            raise ArchiveError(f"{info.filename!r}: is encrypted (accepted: unencrypted members)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(
                f"{info.filename!r}: compression method {info.compress_type} (accepted: stored or deflated)"
            )


def _data_offset(raw: object, info: zipfile.ZipInfo) -> int:
    raw.seek(info.header_offset)  # type: ignore[attr-defined]
    header = raw.read(_LOCAL_HEADER.size)  # type: ignore[attr-defined]
    if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
        raise ArchiveError(f"{info.filename!r}: bad local header (accepted: a well-formed zip)")
    fields = _LOCAL_HEADER.unpack(header)
    flags, name_len, extra_len = fields[2], fields[9], fields[10]
    name = raw.read(name_len).decode("utf-8" if flags & _FLAG_UTF8 else "cp437")  # type: ignore[attr-defined]
    if name != info.filename:
        raise UnsafeArchiveError(
            f"{info.filename!r}: its local header names {name!r} (accepted: matching central and local names)"
        )
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def _extract_member(raw: object, info: zipfile.ZipInfo, start: int, target: Path) -> None:
    raw.seek(start)  # type: ignore[attr-defined]
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    left = info.compress_size
    produced = 0
    crc = 0
    with open(target, "xb") as out:

        def emit(data: bytes) -> None:
            nonlocal produced, crc
            produced += len(data)
            if produced > info.file_size:
                raise UnsafeArchiveError(
                    f"{info.filename!r}: expands past its declared size of {info.file_size} bytes "
                    "(accepted: members whose data matches their declared size)"
                )
            crc = zlib.crc32(data, crc)
            out.write(data)

        while left > 0:
            chunk = raw.read(min(CHUNK_SIZE, left))  # type: ignore[attr-defined]
            if not chunk:
                raise ArchiveError(f"{info.filename!r}: data is truncated (accepted: a complete zip)")
            left -= len(chunk)
            if inflater is None:
                emit(chunk)
                continue
            emit(inflater.decompress(chunk, CHUNK_SIZE))
            while inflater.unconsumed_tail:
                emit(inflater.decompress(inflater.unconsumed_tail, CHUNK_SIZE))
        if inflater is not None:
            emit(inflater.flush())
            if not inflater.eof:
                raise ArchiveError(f"{info.filename!r}: deflate stream ends early (accepted: an intact zip)")
    if produced != info.file_size:
        raise UnsafeArchiveError(
            f"{info.filename!r}: holds {produced} bytes but declares {info.file_size} "
            "(accepted: members whose data matches their declared size)"
        )
    if crc != info.CRC:
        raise ArchiveError(f"{info.filename!r}: CRC-32 mismatch, corrupt data (accepted: an intact zip)")


def _prepare_dest(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ArchiveError(f"{dest}: exists and is not a directory (accepted: a new or empty directory)")
    if dest.exists() and any(dest.iterdir()):
        raise ArchiveError(f"{dest}: is not empty (accepted: a new or empty directory)")
    dest.parent.mkdir(parents=True, exist_ok=True)


def safe_extract(
    zip_path: Path,
    dest: Path,
    *,
    max_total_bytes: int = 64 * 2**30,
    max_ratio: float = 200.0,
    max_files: int = 100_000,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` (new or empty) all-or-nothing; returns the files, sorted."""
    zip_path, dest = Path(zip_path), Path(dest)
    infos = _read_infos(zip_path)
    _check_members(zip_path, infos, max_total_bytes, max_ratio, max_files)
    _prepare_dest(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    extracted: list[str] = []
    try:
        os.chmod(tmp, 0o755)
        tmp_real = tmp.resolve()
        data_end = 0
        with open(zip_path, "rb") as raw:
            for info in sorted(infos, key=lambda i: i.header_offset):
                if info.header_offset < data_end:
                    raise UnsafeArchiveError(
                        f"{info.filename!r}: overlaps the previous member's data (accepted: disjoint members)"
                    )
                start = _data_offset(raw, info)
                data_end = start + info.compress_size
                target = tmp.joinpath(*info.filename.rstrip("/").split("/"))
                if not target.resolve().is_relative_to(tmp_real):  # belt and braces over the name rules
                    raise UnsafeArchiveError(f"{info.filename!r}: resolves outside the target directory")
                if info.filename.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _extract_member(raw, info, start, target)
                extracted.append(info.filename)
        try:
            os.replace(tmp, dest)  # POSIX renames a directory over an empty one atomically
        except OSError:
            dest.rmdir()
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [dest.joinpath(*name.split("/")) for name in sorted(extracted)]
