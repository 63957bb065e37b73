"""The one validator for hostile package data: zips, package file lists, and their extraction.

Every entry that accepts a package from somewhere it does not control applies these rules: ``safe_extract``
(pack's verification, the nightly suite), pack's reuse of a previous build, ``pack verify-remote`` (zips
and packages registered file by file) and the integration fixtures that ``pack --fixtures`` generates.
The generated fixture code cannot import weightpack, so this module is self-contained (standard library
only, no relative imports, no ``from __future__``) and ``packager.fixtures`` embeds its source verbatim:
there is one copy of the rules, and the fixtures run exactly this text.

A broken rule is a :class:`Problem` (the path, the rule, what is accepted); ``unsafe`` marks those that
could write outside the target, through a link, or fill a disk. :class:`HostileArchiveError` carries them.
"""

import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
RESERVED_ROOT_FILES = frozenset({"model_config.json"})
RESERVED_TOP_LEVEL = frozenset({"model_dependencies"})
ACCEPTED_SEGMENT = "path segments of [A-Za-z0-9._-] joined by '/', e.g. '1_Pooling/config.json'"
ROOT = "."
CASE_OK = "names that differ by more than letter case"
CHUNK = 1 << 20

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
_FLAG_UTF8 = 0x800


@dataclass(frozen=True)
class Limits:
    """How much a package may expand to; every limit is checked before anything is written."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS
    max_member_ratio: float = DEFAULT_MAX_MEMBER_RATIO
    max_archive_ratio: float = DEFAULT_MAX_ARCHIVE_RATIO


DEFAULT_LIMITS = Limits()
"""The one set of default limits: a run's own come from its command line (``packager.limits``)."""


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    accepted: str
    unsafe: bool = False

    def __str__(self) -> str:
        return f"{self.path!r}: {self.rule} (accepted: {self.accepted})"


@dataclass
class HostileArchiveError(ValueError):
    """A package (zip or file list) breaks the rules; ``source`` names it."""

    source: str
    problems: list = field(default_factory=list)

    @property
    def unsafe(self) -> bool:
        return any(p.unsafe for p in self.problems)

    def __str__(self) -> str:
        listing = "\n  - ".join(str(p) for p in self.problems)
        return f"{self.source}: refused, {len(self.problems)} problem(s):\n  - {listing}"


def segment_rule(segment: str) -> "str | None":
    """The rule one path segment breaks, or None."""
    if segment == "":
        return "has an empty path segment (a doubled, leading or trailing '/')"
    if segment in (".", ".."):
        return f"has a {segment!r} segment, which escapes or aliases a directory"
    if "\\" in segment:
        return "contains a backslash, which is a path separator on Windows"
    if not SEGMENT_RE.fullmatch(segment):
        return f"segment {segment!r} has characters outside [A-Za-z0-9._-]"
    return None


def path_problem(path: str) -> "Problem | None":
    """The first rule a '/'-separated member path breaks, or None; escapes and absolute paths are unsafe."""
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or path.startswith("\\"):
        return Problem(path, "is an absolute path", "paths relative to the package root", unsafe=True)
    if "\\" in path:
        return Problem(path, "contains a backslash (a Windows separator)", ACCEPTED_SEGMENT, unsafe=True)
    segments = path.split("/")
    if ".." in segments:
        return Problem(path, "has a '..' segment and escapes the package root", ACCEPTED_SEGMENT, unsafe=True)
    if "\x00" in path:
        return Problem(path, "contains a NUL byte", ACCEPTED_SEGMENT, unsafe=True)
    for segment in segments:
        rule = segment_rule(segment)
        if rule:
            return Problem(path, rule, ACCEPTED_SEGMENT)
    return None


def layout_problems(files: Sequence[str], dirs: Iterable[str] = ()) -> "list[Problem]":
    """Package-wide rules on valid relative file paths (plus directories named on their own)."""
    if not files:
        return [Problem(ROOT, "the package holds no files", "at least one file at the package root")]
    problems: list[Problem] = []
    root_files = {p for p in files if "/" not in p}
    tops = {p.split("/", 1)[0] for p in [*files, *dirs]}
    if not root_files and len(tops) == 1:
        (top,) = tops
        problems.append(
            Problem(
                f"{top}/",
                "the package is wrapped in a single folder; the consumer loads the unzipped root directly",
                f"the folder's contents at the root ('config.json', not '{top}/config.json')",
            )
        )
    # any letter case: on a case-insensitive file system MODEL_CONFIG.json is model_config.json
    for name in sorted(p for p in root_files if p.lower() in RESERVED_ROOT_FILES):
        rule = "is reserved at the root, in any letter case (the consumer writes model_config.json)"
        problems.append(Problem(name, rule, "any other file name"))
    for name in sorted(t for t in tops if t.lower() in RESERVED_TOP_LEVEL):
        rule = "is reserved at the top level by the consumer, in any letter case"
        problems.append(Problem(f"{name}/", rule, "any other name"))
    folders = set(dirs)
    for path in [*files, *dirs]:
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return problems + collisions(set(files), folders)


def collisions(files: "set[str]", folders: "set[str]") -> "list[Problem]":
    """Names that land on one path: a file that is also a folder ('a' and 'a/b'), and two names, files or
    folders, that differ only in letter case: one path on a case-insensitive file system, where 'A' and
    'a/b' fail to extract and 'A/x' and 'a/y' merge into one folder."""
    problems = [
        Problem(path, "is both a file and a directory", "one or the other (not 'a' and 'a/b')", True)
        for path in sorted(files & folders)
    ]
    by_folded: dict[str, list[str]] = {}
    for path in files | folders:
        by_folded.setdefault(path.lower(), []).append(path)
    for group in sorted(sorted(g) for g in by_folded.values() if len(g) > 1):
        shown = [p if p in files else p + "/" for p in group]
        if any(p in files for p in group) and any(p in folders for p in group):
            rule = f"differs only in letter case from {shown[1:]}: a file and a directory on one path"
            problems.append(Problem(shown[0], rule + " on case-insensitive file systems", CASE_OK, True))
        else:
            rule = (
                f"differs only in letter case from {shown[1:]} and collides on case-insensitive file systems"
            )
            problems.append(Problem(shown[0], rule, CASE_OK))
    return problems


def name_problems(entries: Iterable[tuple]) -> "list[Problem]":
    """Rules on a package's entries, ``(path, kind)`` with kind 'file', 'dir', 'link' or 'special'
    (a trailing '/' on a path also marks a directory): names, links, duplicates, then the layout."""
    problems: list[Problem] = []
    files: list[str] = []
    dirs: list[str] = []
    seen: set[str] = set()
    for name, kind in entries:
        if name in seen:
            problems.append(Problem(name, "appears more than once", "unique names", unsafe=True))
            continue
        seen.add(name)
        if kind == "link":
            problems.append(Problem(name, "is a symbolic link", "regular files only", unsafe=True))
            continue
        if kind == "special":
            problems.append(Problem(name, "is a special file (device, FIFO)", "regular files", unsafe=True))
            continue
        is_dir = kind == "dir" or name.endswith("/")
        clean = name[:-1] if name.endswith("/") else name
        problem = path_problem(clean)
        if problem:
            problems.append(problem)
        elif clean in dirs or clean in files:
            problems.append(Problem(name, "appears more than once", "unique names", unsafe=True))
        else:
            (dirs if is_dir else files).append(clean)
    return problems + layout_problems(files, dirs)


def file_list_problems(files: Sequence[tuple], limits: Limits = DEFAULT_LIMITS) -> "list[Problem]":
    """Rules on a package registered file by file: ``(path, size or None)`` pairs."""
    problems = name_problems((path, "file") for path, _ in files)
    problems += _count_and_total(len(files), sum(size or 0 for _, size in files), limits)
    return problems


def _count_and_total(count: int, total: int, limits: Limits) -> "list[Problem]":
    problems = []
    if count > limits.max_members:
        problems.append(
            Problem(ROOT, f"holds {count} files", f"at most {limits.max_members} (--max-members)", True)
        )
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
    return "dir" if info.filename.endswith("/") or mode == stat.S_IFDIR else "file"


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
            problems.append(
                Problem(info.filename, f"uses compression method {info.compress_type}", "stored or deflated")
            )
    ratio = total / max(archive_size, 1)
    if total > ARCHIVE_RATIO_MIN_BYTES and ratio > limits.max_archive_ratio:
        problems.append(
            Problem(
                ROOT,
                f"expands {ratio:.0f}:1 as a whole ({total} bytes from {archive_size}), like a zip bomb",
                f"at most {limits.max_archive_ratio:g}:1 for the whole archive",
                True,
            )
        )
    return problems


def read_zip(zip_path: "str | os.PathLike", limits: Limits = DEFAULT_LIMITS) -> "list[tuple]":
    """``(member, data offset)`` of every member, in file order, once every rule holds: the central
    directory's, then each local header's (names match, data does not overlap). Reads no member data."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
        size = os.stat(zip_path).st_size
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise HostileArchiveError(
            str(zip_path), [Problem(ROOT, f"is not a readable zip ({exc})", "a zip file")]
        ) from None
    problems = zip_problems(infos, size, limits)
    members: list[tuple] = []
    if not problems:
        members, problems = _spans(zip_path, infos)
    if problems:
        raise HostileArchiveError(str(zip_path), problems)
    return members


def _spans(zip_path: "str | os.PathLike", infos: Sequence) -> tuple:
    members: list[tuple] = []
    data_end = 0
    with open(zip_path, "rb") as raw:
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset < data_end:
                overlap = "overlaps the previous member's data"
                return [], [Problem(info.filename, overlap, "disjoint members", True)]
            raw.seek(info.header_offset)
            header = raw.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_SIG:
                return [], [Problem(info.filename, "has a bad local header", "a well-formed zip")]
            fields = _LOCAL_HEADER.unpack(header)
            flags, name_len, extra_len = fields[2], fields[9], fields[10]
            name = raw.read(name_len).decode("utf-8" if flags & _FLAG_UTF8 else "cp437", "replace")
            if name != info.filename:
                named = f"has a local header naming {name!r}"
                return [], [Problem(info.filename, named, "matching names", True)]
            start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            members.append((info, start))
            data_end = start + info.compress_size
    return members, []


def stream_member(raw, info: zipfile.ZipInfo, start: int, source: str, write=None) -> None:
    """Decompress one member, handing each piece to ``write`` (None: only check it), with a reader that
    counts: it stops the moment a member expands past its declared size (``zipfile`` would silently
    truncate there instead), then checks size and CRC. Memory stays at a chunk whatever the member."""
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
            raise refuse("deflate stream ends early", "an intact zip", False)
    if produced != info.file_size:
        raise refuse(f"holds {produced} bytes but declares {info.file_size}", "matching declared sizes")
    if crc != info.CRC:
        raise refuse("CRC-32 mismatch, corrupt data", "an intact zip", False)


def extract_zip(
    zip_path: "str | os.PathLike", dest: "str | os.PathLike", limits: Limits = DEFAULT_LIMITS
) -> "list[str]":
    """Extract into ``dest`` (new or empty) all or nothing; returns the member paths, sorted.

    Members go into a temporary sibling ``.<dest>.<pid>-*.partial`` that is renamed onto ``dest`` only once
    every member has been written and checked; on any failure it is removed.
    """
    members = read_zip(zip_path, limits)
    dest = os.path.abspath(dest)
    if os.path.islink(dest) or (os.path.exists(dest) and not os.path.isdir(dest)):
        raise HostileArchiveError(dest, [Problem(dest, "exists and is not a directory", "a new directory")])
    if os.path.isdir(dest) and os.listdir(dest):
        raise HostileArchiveError(dest, [Problem(dest, "is not empty", "a new or empty directory")])
    parent = os.path.dirname(dest)
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
