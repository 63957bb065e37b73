"""Local sources: a directory or a single file, used in place (never copied)."""

from __future__ import annotations

import itertools
from pathlib import Path

from ..errors import SourceError
from ._types import Located
from .hash_cache import iter_files
from .spec import SourceSpec

MAX_FILES = 10_000
"""More files than the largest real checkpoint folders hold (a few hundred shards), and as many as a
package may (``--max-members``' default)."""


def locate_path(path: Path, what: str) -> Located:
    """Describe an existing directory or file; raises SourceError naming ``what`` when it is missing."""
    if not path.exists():
        raise SourceError(f"{what}: {path} does not exist")
    resolved = path.resolve()
    if resolved.is_dir():
        files = list(itertools.islice(iter_files(resolved), MAX_FILES + 1))
        if not files:
            raise SourceError(f"{what}: directory {resolved} holds no files")
        if len(files) > MAX_FILES:  # a system folder (file:///usr), not a model: refused before hashing
            raise SourceError(
                f"{what}: directory {resolved} holds more than {MAX_FILES} files, which no model source "
                "does (accepted: the folder of one model's files)"
            )
        return Located(path=resolved, resolved=str(resolved), files=files)
    if resolved.is_file():
        return Located(path=resolved.parent, resolved=str(resolved), files=[(resolved.name, resolved)])
    raise SourceError(f"{what}: {resolved} is neither a regular file nor a directory")


def fetch_local(spec: SourceSpec) -> Located:
    return locate_path(Path(spec.location), f"local source {spec.uri!r}")
