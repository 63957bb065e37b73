"""The one validator for hostile package data: zips, package file lists, and their extraction.

Every entry that accepts a package from somewhere it does not control applies these rules: ``safe_extract``
(pack's verification, the nightly suite), pack's reuse of a previous build, ``pack verify-remote`` (zips
and packages registered file by file) and the integration fixtures that ``pack --fixtures`` generates.
The generated fixture code cannot import weightpack, so this module and :mod:`.names` (the naming and
layout rules) are self-contained (standard library only, no ``from __future__``, one relative import
between them) and ``packager.fixtures`` embeds both verbatim: there is one copy of the rules, and the
fixtures run exactly this text.
"""

import os
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from .names import ROOT, HostileArchiveError, Problem, name_problems

# Defaults that fit the largest real checkpoints (a 405B-parameter model in bf16 is ~810 GB in a few
# hundred shards) with room to spare; pack and verify-remote take --max-extract-bytes / --max-members.
DEFAULT_MAX_TOTAL_BYTES = 2 * 2**40
DEFAULT_MAX_MEMBERS = 10_000
# Deflate tops out near 1032:1. Real package members (JSON, vocab files) compress under 20:1 and weights
# are stored, so 200:1 on any member, of any size, only refuses bombs; the archive as a whole is held to
# less, so many members each just under the member limit cannot add up to a bomb either.
DEFAULT_MAX_MEMBER_RATIO = 200.0
DEFAULT_MAX_ARCHIVE_RATIO = 50.0
# Below this a whole archive cannot be a bomb, whatever its ratio (a small package of repetitive JSON).
ARCHIVE_RATIO_MIN_BYTES = 1 << 20

_LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
_LOCAL_SIG = b"PK\x03\x04"
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_MSDOS_DIR = 0x10
_INTACT = "an intact zip"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much a package may expand to; every limit is checked before anything is written."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS
    max_member_ratio: float = DEFAULT_MAX_MEMBER_RATIO
    max_archive_ratio: float = DEFAULT_MAX_ARCHIVE_RATIO


DEFAULT_LIMITS = Limits()
"""The one set of default limits: a run's own come from its command line (``packager.limits``)."""


def file_list_problems(files: Sequence[tuple], limits: Limits = DEFAULT_LIMITS) -> "list[Problem]":
    """Rules on a package registered file by file: ``(path, size or None)`` pairs."""
    problems = name_problems((path, "file") for path, _ in files)
    return problems + _count_and_total(len(files), sum(size or 0 for _, size in files), limits)


def _count_and_total(count: int, total: int, limits: Limits) -> "list[Problem]":
    problems = []
    if count > limits.max_members:
        accepted = f"at most {limits.max_members} (--max-members)"
        problems.append(Problem(ROOT, f"holds {count} files", accepted, True))
    if total > limits.max_total_bytes:
        accepted = f"at most {limits.max_total_bytes} bytes (--max-extract-bytes)"
        problems.append(Problem(ROOT, f"expands to {total} bytes", accepted, True))
    return problems


def _member_kind(info: zipfile.ZipInfo) -> str:
    mode = stat.S_IFMT(info.external_attr >> 16)
    if mode == stat.S_IFLNK:
        return "link"
    if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special"
    is_dir = mode == stat.S_IFDIR or (mode == 0 and info.external_attr & _MSDOS_DIR)
    return "dir" if info.filename.endswith("/") or is_dir else "file"


def zip_problems(infos: Sequence, archive_size: int, limits: Limits = DEFAULT_LIMITS) -> "list[Problem]":
    """Every rule a zip's central directory breaks: names and layout, limits, ratios, methods."""
    problems = name_problems((i.filename, _member_kind(i)) for i in infos)
    total = sum(i.file_size for i in infos)
    problems += _count_and_total(len(infos), total, limits)
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size and ratio > limits.max_member_ratio:
            rule = f"compression ratio {ratio:.0f}:1 looks like a zip bomb"
            accepted = f"at most {limits.max_member_ratio:g}:1 per member"
            problems.append(Problem(info.filename, rule, accepted, True))
        if info.flag_bits & _FLAG_ENCRYPTED:
            problems.append(Problem(info.filename, "is encrypted", "unencrypted members"))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            rule = f"uses compression method {info.compress_type}"
            problems.append(Problem(info.filename, rule, "stored or deflated"))
        if info.filename.endswith("/") and (info.file_size or info.compress_size):
            rule = "is a directory entry that holds data, which no extraction writes"
            problems.append(Problem(info.filename, rule, "empty directory entries", True))
    ratio = total / max(archive_size, 1)
    if total > ARCHIVE_RATIO_MIN_BYTES and ratio > limits.max_archive_ratio:
        rule = f"expands {ratio:.0f}:1 as a whole ({total} bytes from {archive_size}), like a zip bomb"
        accepted = f"at most {limits.max_archive_ratio:g}:1 for the whole archive"
        problems.append(Problem(ROOT, rule, accepted, True))
    return problems


def read_zip(zip_path: "str | os.PathLike", limits: Limits = DEFAULT_LIMITS) -> "list[tuple]":
    """``(member, data offset)`` of every member, in file order, once every rule holds: the central
    directory's, then each local header's (names and methods match, members lie end to end from the first
    byte to the central directory: no prepended bytes, no gap that could hide a local header that only a
    tool walking local headers would see). Reads no member data."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos, start_dir = zf.infolist(), getattr(zf, "start_dir", None)
        size = os.stat(zip_path).st_size
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error) as exc:
        problem = Problem(ROOT, f"is not a readable zip ({type(exc).__name__}: {exc})", "a zip file")
        raise HostileArchiveError(str(zip_path), [problem]) from None
    problems = zip_problems(infos, size, limits)
    members: list[tuple] = []
    if not problems:
        members, problems = _spans(zip_path, infos, start_dir)
    if problems:
        raise HostileArchiveError(str(zip_path), problems)
    return members


def _spans(zip_path: "str | os.PathLike", infos: Sequence, start_dir: "int | None") -> tuple:
    members: list[tuple] = []
    data_end = 0
    with open(zip_path, "rb") as raw:
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset != data_end:
                return [], [_gap(info.filename, data_end, info.header_offset)]
            raw.seek(info.header_offset)
            header = raw.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
                return [], [Problem(info.filename, "has a bad local header", "a well-formed zip")]
            fields = _LOCAL_HEADER.unpack(header)
            flags, method, name_len, extra_len = fields[2], fields[3], fields[9], fields[10]
            name = raw.read(name_len).decode("utf-8" if flags & _FLAG_UTF8 else "cp437", "replace")
            if name != info.filename:
                named = f"has a local header naming {name!r}"
                return [], [Problem(info.filename, named, "matching names", True)]
            if method != info.compress_type:
                rule = (
                    f"has a local header saying method {method}, the central directory {info.compress_type}"
                )
                return [], [Problem(info.filename, rule, "headers that agree", True)]
            start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            members.append((info, start))
            data_end = start + info.compress_size
            descriptor = _descriptor(raw, info, data_end)
            if descriptor is None:
                return [], [Problem(info.filename, "has a bad data descriptor", "a well-formed zip")]
            data_end += descriptor
    if start_dir is not None and start_dir != data_end:
        return [], [_gap(ROOT, data_end, start_dir)]
    return members, []


def _gap(path: str, end: int, start: int) -> Problem:
    if end == 0:
        return Problem(path, f"has {start} bytes before the first member", "a zip that starts with a member")
    if start < end:
        return Problem(path, "overlaps the previous member's data", "disjoint members", True)
    hidden = f"follows {start - end} bytes of no member (a local header hidden from the central directory?)"
    return Problem(path, hidden, "members that lie end to end", True)


def _descriptor(raw, info: zipfile.ZipInfo, at: int) -> "int | None":
    """The length of the data descriptor after a member's data (0 without flag bit 3), None if it is bad:
    an optional signature, then the CRC and both sizes (4 or, zip64, 8 bytes) of the central directory."""
    if not info.flag_bits & _FLAG_DESCRIPTOR:
        return 0
    raw.seek(at)
    blob = raw.read(24)
    skip = 4 if blob[:4] == b"PK\x07\x08" else 0
    for layout in ("<LLL", "<LQQ"):
        try:
            expected = struct.pack(layout, info.CRC, info.compress_size, info.file_size)
        except struct.error:
            continue
        if blob[skip : skip + len(expected)] == expected:
            return skip + len(expected)
    return None


def stream_member(raw, info: zipfile.ZipInfo, start: int, source: str, write=None) -> None:
    """Decompress one member, handing each piece to ``write`` (None: only check it), with a reader that
    counts: it stops the moment a member expands past its declared size (``zipfile`` would silently
    truncate there instead), then checks size and CRC. Memory stays at a chunk whatever the member.
    Corrupt deflate data is a refusal like any other, never a ``zlib.error``."""
    raw.seek(start)
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    left, produced, crc = info.compress_size, 0, 0

    def refuse(rule: str, accepted: str, unsafe: bool = True) -> HostileArchiveError:
        return HostileArchiveError(source, [Problem(info.filename, rule, accepted, unsafe)])

    def emit(data: bytes) -> None:
        nonlocal produced, crc
        produced += len(data)
        if produced > info.file_size:
            rule = f"expands past its declared size of {info.file_size} bytes"
            raise refuse(rule, "members whose data matches their declared size")
        crc = zlib.crc32(data, crc)
        if write is not None:
            write(data)

    try:
        while left > 0:
            chunk = raw.read(min(CHUNK, left))
            if not chunk:
                raise refuse("data is truncated", "a complete zip", False)
            left -= len(chunk)
            if inflater is None:
                emit(chunk)
                continue
            emit(inflater.decompress(chunk, CHUNK))
            while inflater.unconsumed_tail:
                emit(inflater.decompress(inflater.unconsumed_tail, CHUNK))
        if inflater is not None:
            emit(inflater.flush())
            if not inflater.eof:
                raise refuse("deflate stream ends early", _INTACT, False)
    except zlib.error as exc:
        raise refuse(f"has corrupt deflate data ({exc})", _INTACT, False) from None
    if produced != info.file_size:
        raise refuse(f"holds {produced} bytes but declares {info.file_size}", "matching declared sizes")
    if crc != info.CRC:
        raise refuse("CRC-32 mismatch, corrupt data", _INTACT, False)


def extract_zip(
    zip_path: "str | os.PathLike", dest: "str | os.PathLike", limits: Limits = DEFAULT_LIMITS
) -> "list[str]":
    """Extract into ``dest`` (new or empty) all or nothing; returns the member paths, sorted.

    Members go into a temporary sibling ``.<dest>.<pid>-*.partial`` that is renamed onto ``dest`` only once
    every member has been written and checked; on any failure it is removed. Neither ``dest`` nor its
    parent may be a symbolic link: nothing is written through a link someone else planted.
    """
    members = read_zip(zip_path, limits)
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    for path, what in ((dest, "a new directory"), (parent, "a directory that is not a symbolic link")):
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
            problem = Problem(path, "is a symbolic link or not a directory", what)
            raise HostileArchiveError(dest, [problem])
    if os.path.isdir(dest) and os.listdir(dest):
        raise HostileArchiveError(dest, [Problem(dest, "is not empty", "a new or empty directory")])
    os.makedirs(parent, exist_ok=True)
    # named like every weightpack temporary (.<what>.<pid>-<random>.partial), so a later run can tell
    # one left by a killed process from one in use
    prefix = f".{os.path.basename(dest)}.{os.getpid()}-"
    tmp = tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent)
    extracted: list[str] = []
    try:
        os.chmod(tmp, 0o755)
        tmp_real = os.path.realpath(tmp)
        with open(zip_path, "rb") as raw:
            for info, start in members:
                target = os.path.join(tmp, *info.filename.rstrip("/").split("/"))
                if os.path.commonpath([tmp_real, os.path.realpath(target)]) != tmp_real:
                    raise HostileArchiveError(  # belt and braces over the name rules
                        str(zip_path), [Problem(info.filename, "resolves outside the target", "", True)]
                    )
                if info.filename.endswith("/"):
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "xb") as out:
                    stream_member(raw, info, start, str(zip_path), out.write)
                extracted.append(info.filename)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(extracted)
