"""The hostile corpus: small synthetic zips (and package file lists) that every entry must refuse.

Each :class:`Case` writes its zip with :meth:`Case.write`; ``handles`` is the same attack as the file list
of a package registered file by file (None when the attack only exists inside a zip). Absolute-path and
escape cases aim at ``EVIL_NAME`` so a test can check that nothing of that name appeared anywhere.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
EVIL_NAME = "weightpack-hostile-evil.json"
ABSOLUTE_TARGET = f"/tmp/{EVIL_NAME}"
GOOD = [("config.json", b'{"hidden_size": 4}'), ("weights.onnx", os.urandom(256))]


def write_zip(path: Path, members: list, method: int = zipfile.ZIP_STORED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def info(name: str, mode: int) -> zipfile.ZipInfo:
    member = zipfile.ZipInfo(name)
    member.external_attr = mode << 16
    return member


def _central(blob: bytes, name: str) -> int:
    """Offset of ``name``'s central-directory record."""
    at = blob.find(b"PK\x01\x02")
    while at >= 0 and blob[at + 46 : at + 46 + len(name)] != name.encode():
        at = blob.find(b"PK\x01\x02", at + 4)
    assert at >= 0, name
    return at


def _patch(path: Path, edit: Callable[[bytearray], None]) -> Path:
    blob = bytearray(path.read_bytes())
    edit(blob)
    path.write_bytes(bytes(blob))
    return path


def understated(path: Path) -> Path:
    """A member whose data is longer than the size its headers declare."""
    write_zip(path, [*GOOD, ("vocab.txt", os.urandom(2000) * 20)], zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo("vocab.txt").header_offset

    def edit(blob: bytearray) -> None:
        struct.pack_into("<L", blob, offset + 22, 1000)
        struct.pack_into("<L", blob, _central(bytes(blob), "vocab.txt") + 24, 1000)

    return _patch(path, edit)


def overlapping(path: Path) -> Path:
    """Two central entries pointing into the same local data (a 'quine'-style overlap)."""
    write_zip(path, [*GOOD, ("tokenizer.json", b"{}" * 50)])
    with zipfile.ZipFile(path) as zf:
        first = zf.getinfo("config.json").header_offset

    def edit(blob: bytearray) -> None:
        struct.pack_into("<L", blob, _central(bytes(blob), "tokenizer.json") + 42, first)

    return _patch(path, edit)


def renamed_local(path: Path) -> Path:
    """The local header names a different file than the central directory."""
    write_zip(path, [*GOOD, ("vocab.txt", b"abc")])
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo("vocab.txt").header_offset

    def edit(blob: bytearray) -> None:
        blob[offset + 30 : offset + 39] = b"../evil.t"

    return _patch(path, edit)


def crc_corrupt(path: Path) -> Path:
    """A stored member whose data no longer matches its CRC-32; every header intact."""
    write_zip(path, [*GOOD, ("vocab.txt", b"hello world " * 10)])
    with zipfile.ZipFile(path) as zf:
        start = zf.getinfo("vocab.txt").header_offset + 30 + len("vocab.txt")  # writestr adds no extra field

    def edit(blob: bytearray) -> None:
        blob[start] ^= 0xFF

    return _patch(path, edit)


def corrupt_deflate(path: Path) -> Path:
    """A deflated member whose compressed bytes are garbage (an invalid block type); headers and CRC intact,
    so only the decompressor can tell: a raw ``zlib.error`` unless the validator turns it into a refusal."""
    write_zip(path, [*GOOD, ("vocab.txt", b"hello world " * 200)], zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        member = zf.getinfo("vocab.txt")
        start, size = member.header_offset + 30 + len("vocab.txt"), member.compress_size

    def edit(blob: bytearray) -> None:
        blob[start : start + size] = b"\xff" * size

    return _patch(path, edit)


def hidden_local_header(path: Path) -> Path:
    """A member whose local header and data stay in the file but whose central-directory record is gone:
    ``zipfile`` never sees it, a tool that walks local headers extracts ``../../EVIL_NAME``."""
    write_zip(path, [GOOD[0], (f"../../{EVIL_NAME}", b"x" * 64), GOOD[1]])

    def edit(blob: bytearray) -> None:
        at = _central(bytes(blob), f"../../{EVIL_NAME}")
        n, m, k = struct.unpack_from("<HHH", blob, at + 28)
        del blob[at : at + 46 + n + m + k]
        end = bytes(blob).rfind(b"PK\x05\x06")
        entries, cd_size = struct.unpack_from("<HHL", blob, end + 8)[1:]
        struct.pack_into("<HHL", blob, end + 8, entries - 1, entries - 1, cd_size - (46 + n + m + k))

    return _patch(path, edit)


def prepended(path: Path) -> Path:
    """Bytes before the first local header (a self-extractor stub, or anything else riding along)."""
    write_zip(path, GOOD)
    path.write_bytes(b"MZ" + bytes(510) + path.read_bytes())
    return path


def method_mismatch(path: Path) -> Path:
    """A stored member whose local header says deflated: extractors that trust one header or the other
    produce different bytes."""
    write_zip(path, [*GOOD, ("vocab.txt", b"abc" * 10)])
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo("vocab.txt").header_offset

    def edit(blob: bytearray) -> None:
        struct.pack_into("<H", blob, offset + 8, zipfile.ZIP_DEFLATED)

    return _patch(path, edit)


def dir_by_attributes(path: Path) -> Path:
    """A member ``a`` whose external attributes say directory (no trailing '/'), and a file ``a/b``: the
    name rules see a folder, ``zipfile`` extracts a file, and ``a/b`` then fails with File exists."""
    return write_zip(path, [*GOOD, (info("a", stat.S_IFDIR | 0o755), b""), ("a/b", b"y")])


def many_small_bomb(path: Path) -> Path:
    """Many 1 MiB members of zeros (each ~1000:1): the bypass of a ratio check limited to big members."""
    return write_zip(path, [*GOOD, *((f"shard-{i:04d}.json", bytes(MIB)) for i in range(64))], 8)


def ratio_creep(path: Path) -> Path:
    """Members each under the per-member ratio, adding up to a whole archive far over the archive ratio."""
    pad = bytes(MIB)
    members = [(f"part-{i}.json", os.urandom(7000) + pad) for i in range(6)]
    return write_zip(path, [*GOOD, *members], zipfile.ZIP_DEFLATED)


def big_bomb(path: Path) -> Path:
    return write_zip(path, [*GOOD, ("weights.json", bytes(16 * MIB))], zipfile.ZIP_DEFLATED)


def too_many(path: Path) -> Path:
    return write_zip(path, [*GOOD, *((f"f{i}.txt", b"") for i in range(10_000))])


def bzip2(path: Path) -> Path:
    return write_zip(path, [*GOOD, ("vocab.txt", b"abc" * 10)], zipfile.ZIP_BZIP2)


def not_a_zip(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 this is not a zip" + os.urandom(100))
    return path


DEEP = "/".join(["d"] * 2100) + "/x.json"
LONG = "w" * 300 + ".json"


def members(*extra: tuple) -> Callable[[Path], Path]:
    return lambda path: write_zip(path, [*GOOD, *extra])


@dataclass(frozen=True)
class Case:
    """One attack. ``rule`` is a distinctive part of the message of the rule it must be refused for, so a
    case refused for another reason (a broken corpus zip, a rule that stopped firing) fails its test."""

    name: str
    write: Callable[[Path], Path]
    rule: str
    handles: tuple[str, ...] | None = None  # the same attack as a registered file list
    list_rule: str | None = None  # the rule the file list breaks, where it reads differently

    @property
    def handles_rule(self) -> str:
        return self.list_rule or self.rule


ESCAPES = "has a '..' segment and escapes the package root"
ABSOLUTE = "is an absolute path"
BACKSLASH = "contains a backslash (a Windows separator)"
TWICE = "appears more than once"
MEMBER_BOMB = "looks like a zip bomb (accepted: at most 200:1 per member)"
ROOT_RESERVED = "is reserved at the root"
TOP_RESERVED = "is reserved at the top level"
WINDOWS = "is a name Windows reserves (CON, nul.txt, COM1, a trailing '.')"
FILE_AND_DIR_IN_CASE = "differs only in letter case from ['a/']: a file and a directory"

CASES = [
    Case("zip-slip", members((f"../{EVIL_NAME}", b"x")), ESCAPES, ("config.json", f"../{EVIL_NAME}")),
    Case(
        "nested-slip",
        members((f"sub/../../{EVIL_NAME}", b"x")),
        ESCAPES,
        ("config.json", f"a/../../{EVIL_NAME}"),
    ),
    Case("absolute", members((ABSOLUTE_TARGET, b"x")), ABSOLUTE, ("config.json", ABSOLUTE_TARGET)),
    Case("drive-letter", members(("C:\\evil.json", b"x")), ABSOLUTE, ("config.json", "C:/evil.json")),
    Case(
        "backslash-slip",
        members(("sub\\..\\..\\evil.json", b"x")),
        BACKSLASH,
        ("config.json", "..\\evil.json"),
    ),
    Case("symlink", members((info("link.json", stat.S_IFLNK | 0o777), b"/etc/passwd")), "is a symbolic link"),
    Case("fifo", members((info("pipe.json", stat.S_IFIFO | 0o644), b"")), "is a special file (device, FIFO)"),
    Case("duplicate", members(("config.json", b"{}")), TWICE, ("config.json", "weights.onnx", "config.json")),
    Case(
        "wrapper-folder",
        lambda p: write_zip(p, [("pkg/config.json", b"{}"), ("pkg/weights.onnx", b"x")]),
        "'pkg/': the package is wrapped in a single folder",
        ("pkg/config.json", "pkg/weights.onnx"),
    ),
    Case(
        "reserved-model-config",
        members(("model_config.json", b"{}")),
        f"'model_config.json': {ROOT_RESERVED}",
        ("config.json", "model_config.json"),
    ),
    Case(
        "reserved-model-config-upper-case",
        members(("MODEL_CONFIG.json", b"{}")),
        f"'MODEL_CONFIG.json': {ROOT_RESERVED}",
        ("config.json", "MODEL_CONFIG.json"),
    ),
    Case(
        "reserved-model-dependencies",
        members(("model_dependencies/evil.py", b"import os")),
        f"'model_dependencies/': {TOP_RESERVED}",
        ("config.json", "model_dependencies/evil.py"),
    ),
    Case(
        "reserved-model-dependencies-mixed-case",
        members(("Model_Dependencies/evil.py", b"import os")),
        f"'Model_Dependencies/': {TOP_RESERVED}",
        ("config.json", "Model_Dependencies/evil.py"),
    ),
    Case(
        "file-and-folder",
        members(("a", b"x"), ("a/b", b"y")),
        "'a': is both a file and a directory",
        ("config.json", "a", "a/b"),
    ),
    Case(
        "file-and-folder-differing-in-case",
        members(("A", b"x"), ("a/b", b"y")),
        f"'A': {FILE_AND_DIR_IN_CASE}",
        ("config.json", "A", "a/b"),
    ),
    Case("dir-entry-and-file", members(("a/", b""), ("a", b"x")), f"'a': {TWICE}"),
    Case(
        "dir-entry-and-file-differing-in-case",
        members(("a/", b""), ("A", b"x")),
        f"'A': {FILE_AND_DIR_IN_CASE}",
    ),
    Case(
        "case-collision",
        members(("Config.json", b"{}")),
        "differs only in letter case from ['config.json'] and collides",
        ("config.json", "Config.json"),
    ),
    Case(
        "folders-differing-in-case",
        members(("A/x.json", b"{}"), ("a/y.json", b"{}")),
        "'A/': differs only in letter case from ['a/'] and collides",
        ("config.json", "A/x.json", "a/y.json"),
    ),
    Case(
        "empty-segment",
        members(("a//b.json", b"{}")),
        "has an empty path segment",
        ("config.json", "a//b.json"),
    ),
    Case(
        "bad-characters",
        members(("we ird$.json", b"{}")),
        "has characters outside [A-Za-z0-9._-]",
        ("config.json", "we ird$.json"),
    ),
    Case("empty-package", lambda p: write_zip(p, []), "the package holds no files", ()),
    Case(
        "member-larger-than-declared",
        understated,
        "'vocab.txt': expands past its declared size of 1000 bytes",
    ),
    Case("crc-mismatch", crc_corrupt, "'vocab.txt': CRC-32 mismatch"),
    Case("overlapping-entries", overlapping, "'tokenizer.json': overlaps the previous member's data"),
    Case("local-name-mismatch", renamed_local, "has a local header naming '../evil.t'"),
    Case("many-small-members-bomb", many_small_bomb, MEMBER_BOMB),
    Case(
        "whole-archive-ratio",
        ratio_creep,
        "like a zip bomb (accepted: at most 50:1 for the whole archive)",
    ),
    Case("single-member-bomb", big_bomb, MEMBER_BOMB),
    Case(
        "too-many-members",
        too_many,
        "holds 10002 files (accepted: at most 10000 (--max-members))",
        ("config.json", *(f"f{i}.txt" for i in range(10_000))),
        list_rule="holds 10001 files (accepted: at most 10000 (--max-members))",
    ),
    Case("unsupported-method", bzip2, "uses compression method 12 (accepted: stored or deflated)"),
    Case("not-a-zip", not_a_zip, "is not a readable zip"),
    Case("corrupt-deflate", corrupt_deflate, "'vocab.txt': has corrupt deflate data (Error -3"),
    Case(
        "dir-by-attributes-and-file",
        dir_by_attributes,
        "'a': is a directory by its attributes but a file by its name",
    ),
    Case("deep-path", members((DEEP, b"{}")), "is too deep or too long (2101 levels", ("config.json", DEEP)),
    Case(
        "long-segment",
        members((LONG, b"{}")),
        "has a segment of 305 characters, over the limit of 255",
        ("config.json", LONG),
    ),
    Case("hidden-local-header", hidden_local_header, "bytes of no member (a local header hidden"),
    Case("prepended-bytes", prepended, "has 512 bytes before the first member"),
    Case("local-method-mismatch", method_mismatch, "'vocab.txt': has a local header saying method 8"),
    Case(
        "directory-entry-with-data",
        members(("a/", b"hidden data")),
        "'a/': is a directory entry that holds data",
    ),
    Case("windows-device-name", members(("CON", b"{}")), WINDOWS, ("config.json", "CON")),
    Case("windows-device-with-suffix", members(("nul.txt", b"{}")), WINDOWS, ("config.json", "nul.txt")),
    Case(
        "windows-trailing-dot",
        members(("config.json.", b"{}")),
        "segment 'config.json.' is a name Windows reserves",
        ("config.json", "config.json."),
    ),
]
ZIP_CASES = {case.name: case for case in CASES}
LIST_CASES = {case.name: case for case in CASES if case.handles is not None}


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def no_evil_anywhere(root: Path) -> None:
    assert not Path(ABSOLUTE_TARGET).exists(), ABSOLUTE_TARGET
    strays = [p for p in snapshot(root.parent) if EVIL_NAME in p or p.endswith("evil.json")]
    assert strays == [], strays
