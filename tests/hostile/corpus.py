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


def members(*extra: tuple) -> Callable[[Path], Path]:
    return lambda path: write_zip(path, [*GOOD, *extra])


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], Path]
    handles: tuple[str, ...] | None = None  # the same attack as a registered file list


CASES = [
    Case("zip-slip", members((f"../{EVIL_NAME}", b"x")), ("config.json", f"../{EVIL_NAME}")),
    Case("nested-slip", members((f"sub/../../{EVIL_NAME}", b"x")), ("config.json", f"a/../../{EVIL_NAME}")),
    Case("absolute", members((ABSOLUTE_TARGET, b"x")), ("config.json", ABSOLUTE_TARGET)),
    Case("drive-letter", members(("C:\\evil.json", b"x")), ("config.json", "C:/evil.json")),
    Case("backslash-slip", members(("sub\\..\\..\\evil.json", b"x")), ("config.json", "..\\evil.json")),
    Case("symlink", members((info("link.json", stat.S_IFLNK | 0o777), b"/etc/passwd"))),
    Case("fifo", members((info("pipe.json", stat.S_IFIFO | 0o644), b""))),
    Case("duplicate", members(("config.json", b"{}")), ("config.json", "weights.onnx", "config.json")),
    Case(
        "wrapper-folder",
        lambda p: write_zip(p, [("pkg/config.json", b"{}"), ("pkg/weights.onnx", b"x")]),
        ("pkg/config.json", "pkg/weights.onnx"),
    ),
    Case(
        "reserved-model-config", members(("model_config.json", b"{}")), ("config.json", "model_config.json")
    ),
    Case(
        "reserved-model-dependencies",
        members(("model_dependencies/evil.py", b"import os")),
        ("config.json", "model_dependencies/evil.py"),
    ),
    Case("file-and-folder", members(("a", b"x"), ("a/b", b"y")), ("config.json", "a", "a/b")),
    Case("dir-entry-and-file", members(("a/", b""), ("a", b"x"))),
    Case("case-collision", members(("Config.json", b"{}")), ("config.json", "Config.json")),
    Case("empty-segment", members(("a//b.json", b"{}")), ("config.json", "a//b.json")),
    Case("bad-characters", members(("we ird$.json", b"{}")), ("config.json", "we ird$.json")),
    Case("empty-package", lambda p: write_zip(p, []), ()),
    Case("member-larger-than-declared", understated),
    Case("overlapping-entries", overlapping),
    Case("local-name-mismatch", renamed_local),
    Case("many-small-members-bomb", many_small_bomb),
    Case("whole-archive-ratio", ratio_creep),
    Case("single-member-bomb", big_bomb),
    Case("too-many-members", too_many, ("config.json", *(f"f{i}.txt" for i in range(10_000)))),
    Case("unsupported-method", bzip2),
    Case("not-a-zip", not_a_zip),
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
