"""Layout rules on a package tree on disk; the rules themselves live in :mod:`.validator`.

``scan_tree`` walks a staging folder (without following links) and reports the same problems the
validator reports for a zip's members or a registered package's file list.
"""

from __future__ import annotations

import os
from pathlib import Path

from packager.archive.names import (
    ACCEPTED_SEGMENT,
    ROOT,
    Problem,
    layout_problems,
    segment_rule,
)

__all__ = ["Problem", "scan_tree"]


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
