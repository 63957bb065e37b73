"""Names and layout: the rules a package's member paths follow, whatever holds them (a zip, a file list
registered with the models service, a tree on disk). Pure functions of strings.

Part of the one validator for hostile package data (see :mod:`.validator`): standard library only, and
``packager.fixtures`` embeds this file and ``validator.py`` verbatim in the generated fixtures, where they
run as a package of their own (hence the one relative import, in ``validator.py``, and no other).
A broken rule is a :class:`Problem` (the path, the rule, what is accepted); ``unsafe`` marks those that
could write outside the target, through a link, or fill a disk. :class:`HostileArchiveError` carries them.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
RESERVED_ROOT_FILES = frozenset({"model_config.json"})
RESERVED_TOP_LEVEL = frozenset({"model_dependencies"})
ACCEPTED_SEGMENT = "path segments of [A-Za-z0-9._-] joined by '/', e.g. '1_Pooling/config.json'"
ROOT = "."
CASE_OK = "names that differ by more than letter case"
CASE_FS = "on case-insensitive file systems"
# Real packages are shallow ('1_Pooling/config.json'). These keep every name extractable on every common
# file system (NAME_MAX 255; PATH_MAX 4096 leaves room for the target folder) and every walk bounded.
MAX_DEPTH = 32
MAX_SEGMENT = 255
MAX_PATH = 1024
# Windows reserves these in any letter case and with any extension ('nul.txt'); the consumer may run there.
WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{d}{i}" for d in ("com", "lpt") for i in range(10)]
)


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
    if len(segment) > MAX_SEGMENT:
        return f"has a segment of {len(segment)} characters, over the limit of {MAX_SEGMENT}"
    if segment.split(".")[0].lower() in WINDOWS_RESERVED or segment.endswith("."):
        return f"segment {segment!r} is a name Windows reserves (CON, nul.txt, COM1, a trailing '.')"
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
    if len(segments) > MAX_DEPTH or len(path) > MAX_PATH:
        rule = f"is too deep or too long ({len(segments)} levels, {len(path)} characters)"
        return Problem(path[:120], rule, f"at most {MAX_DEPTH} levels and {MAX_PATH} characters", True)
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
        rule = "the package is wrapped in a single folder; the consumer loads the unzipped root directly"
        accepted = f"the folder's contents at the root ('config.json', not '{top}/config.json')"
        problems.append(Problem(f"{top}/", rule, accepted))
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
            rule = (
                f"differs only in letter case from {shown[1:]}: a file and a directory on one path {CASE_FS}"
            )
            problems.append(Problem(shown[0], rule, CASE_OK, True))
        else:
            problems.append(
                Problem(
                    shown[0], f"differs only in letter case from {shown[1:]} and collides {CASE_FS}", CASE_OK
                )
            )
    return problems


def name_problems(entries: Iterable[tuple]) -> "list[Problem]":
    """Rules on a package's entries, ``(path, kind)`` with kind 'file', 'dir', 'link' or 'special': names,
    links, duplicates, then the layout. A directory is named with a trailing '/': a member whose type says
    directory without it would be extracted as a file by one tool and as a folder by another."""
    problems: list[Problem] = []
    files: dict[str, None] = {}
    dirs: dict[str, None] = {}
    for name, kind in entries:
        clean = name[:-1] if name.endswith("/") else name
        if kind in ("link", "special"):
            what = "a symbolic link" if kind == "link" else "a special file (device, FIFO)"
            problems.append(Problem(name, f"is {what}", "regular files only", unsafe=True))
        elif kind == "dir" and not name.endswith("/"):
            rule = "is a directory by its attributes but a file by its name (no trailing '/')"
            problems.append(Problem(name, rule, "directory entries named 'a/'", unsafe=True))
        elif clean in dirs or clean in files:
            problems.append(Problem(name, "appears more than once", "unique names", unsafe=True))
        elif path_problem(clean):
            problems.append(path_problem(clean))  # type: ignore[arg-type]
        else:
            (dirs if name.endswith("/") else files)[clean] = None
    return problems + layout_problems(list(files), list(dirs))
