"""Layout rules shared by a package tree on disk and the member names of a zip.

A rule violation is a :class:`Problem`: the offending path, the rule it breaks and what would be accepted.
``unsafe`` marks the ones that could write outside the target or through a link (zip-slip, absolute
paths, symlink members, duplicates); ``safe_extract`` raises ``UnsafeArchiveError`` for those and
``ArchiveError`` for plain layout breaks.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
RESERVED_ROOT_FILES = frozenset({"model_config.json"})
RESERVED_TOP_LEVEL = frozenset({"model_dependencies"})
ACCEPTED_SEGMENT = "path segments of [A-Za-z0-9._-] joined by '/', e.g. '1_Pooling/config.json'"
ROOT = "."


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    accepted: str
    unsafe: bool = False

    def __str__(self) -> str:
        return f"{self.path!r}: {self.rule} (accepted: {self.accepted})"


def segment_rule(segment: str) -> str | None:
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


def path_problem(path: str) -> Problem | None:
    """The first rule a '/'-separated member path breaks, or None; escapes and absolute paths are unsafe."""
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or path.startswith("\\"):
        return Problem(path, "is an absolute path", "paths relative to the package root", unsafe=True)
    if "\\" in path:
        return Problem(path, "contains a backslash (a Windows separator)", ACCEPTED_SEGMENT, unsafe=True)
    segments = path.split("/")
    if ".." in segments:
        return Problem(path, "has a '..' segment and escapes the package root", ACCEPTED_SEGMENT, unsafe=True)
    for segment in segments:
        rule = segment_rule(segment)
        if rule:
            return Problem(path, rule, ACCEPTED_SEGMENT)
    return None


def layout_problems(files: Sequence[str], top_dirs: Iterable[str] = ()) -> list[Problem]:
    """Package-wide rules on valid relative file paths (plus top-level directories that hold no file)."""
    if not files:
        return [Problem(ROOT, "the package holds no files", "at least one file at the package root")]
    problems: list[Problem] = []
    root_files = {p for p in files if "/" not in p}
    tops = {p.split("/", 1)[0] for p in files} | set(top_dirs)
    if not root_files and len(tops) == 1:
        (top,) = tops
        problems.append(
            Problem(
                f"{top}/",
                "the package is wrapped in a single folder; the consumer loads the unzipped root directly",
                f"the folder's contents at the root ('config.json', not '{top}/config.json')",
            )
        )
    for name in sorted(root_files & RESERVED_ROOT_FILES):
        problems.append(
            Problem(name, "is reserved at the root (the consumer writes it itself)", "any other file name")
        )
    for name in sorted(tops & RESERVED_TOP_LEVEL):
        problems.append(Problem(f"{name}/", "is reserved at the top level by the consumer", "any other name"))
    by_folded: dict[str, list[str]] = {}
    for path in files:
        by_folded.setdefault(path.lower(), []).append(path)
    for group in sorted(g for g in by_folded.values() if len(g) > 1):
        problems.append(
            Problem(
                group[0],
                f"differs only in letter case from {group[1:]} and collides on case-insensitive file systems",
                "names that differ by more than case",
            )
        )
    parents = {p.rsplit("/", 1)[0] for p in files if "/" in p}
    implied = {"/".join(d.split("/")[:i]) for d in parents for i in range(1, d.count("/") + 2)}
    for path in sorted(set(files) & implied):
        problems.append(Problem(path, "is both a file and a directory", "one or the other"))
    return problems


def scan_tree(root: Path) -> tuple[list[tuple[str, Path]], list[Problem]]:
    """Walk ``root`` without following links: the (relative posix path, path) of every file, and problems."""
    root = Path(root)
    if not root.is_dir():
        return [], [Problem(str(root), "is not a directory", "a directory holding the package files")]
    files: list[tuple[str, Path]] = []
    problems: list[Problem] = []
    stack: list[tuple[str, str]] = [("", os.fspath(root))]
    while stack:
        prefix, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            where = prefix or ROOT
            problems.append(Problem(where, f"cannot be listed ({exc.strerror})", "readable directories"))
            continue
        if not entries and prefix:
            problems.append(
                Problem(prefix, "is an empty directory and would not be packaged", "remove it or add a file")
            )
        for entry in entries:
            rel = prefix + entry.name
            rule = segment_rule(entry.name)
            if rule:
                problems.append(Problem(rel, rule, ACCEPTED_SEGMENT))
            if entry.is_symlink():
                problems.append(
                    Problem(rel, "is a symbolic link", "regular files and dirs; copy the link's target in")
                )
            elif entry.is_dir(follow_symlinks=False):
                stack.append((rel + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                files.append((rel, Path(entry.path)))
            else:
                problems.append(
                    Problem(rel, "is not a regular file (device, FIFO, socket)", "regular files and dirs")
                )
    files.sort()
    problems.extend(layout_problems([rel for rel, _ in files]))
    return files, sorted(problems, key=lambda p: p.path)


def member_kind(info: zipfile.ZipInfo) -> int:
    """The S_IFMT bits a zip member declares (0 when it was not written by a Unix tool)."""
    return stat.S_IFMT(info.external_attr >> 16)


def zip_problems(infos: Sequence[zipfile.ZipInfo]) -> list[Problem]:
    """The layout and safety rules on a zip's members (names, link members, duplicates)."""
    problems: list[Problem] = []
    files: list[str] = []
    top_dirs: set[str] = set()
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if name in seen:
            problems.append(Problem(name, "appears more than once in the zip", "unique names", unsafe=True))
            continue
        seen.add(name)
        kind = member_kind(info)
        if kind == stat.S_IFLNK:
            problems.append(Problem(name, "is a symbolic-link member", "regular files only", unsafe=True))
            continue
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            problems.append(Problem(name, "is a special-file member", "regular files only", unsafe=True))
            continue
        is_dir = name.endswith("/")
        clean = name[:-1] if is_dir else name
        problem = path_problem(clean)
        if problem:
            problems.append(problem)
        elif is_dir:
            top_dirs.add(clean.split("/", 1)[0])
        else:
            files.append(clean)
    problems.extend(layout_problems(files, top_dirs))
    return problems
