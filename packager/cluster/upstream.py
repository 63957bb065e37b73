"""The upstream files a task builds from travel from the driver, once per node.

The driver fetched (and hash-checked) each variant's upstream files for its reference outputs; tasks get
those same bytes through Ray's object store, one object per file, so workers need no credentials, no
network and no copy of the driver's recipe folder, and every node builds from exactly the driver's files.
A node keeps them in its cache folder (``$WEIGHTPACK_CACHE/cluster/upstream/KEY``, KEY a hash of the
files' hashes), so later tasks on that node fetch nothing; a task whose package and checks are all reused
does not even look at them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from packager import atomic
from packager.errors import SourceError


def bundle_key(provenance: dict[str, Any]) -> str:
    """Content key of a variant's upstream files: their paths, sizes and sha256s."""
    files = [(f["path"], f.get("size"), f.get("sha256")) for f in provenance.get("files") or []]
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:32]


def upstream_files(root: Path, provenance: dict[str, Any]) -> list[tuple[str, Path]]:
    """``(relative path, file)`` for every upstream file listed in ``provenance`` under ``root``."""
    return [(f["path"], Path(root) / f["path"]) for f in provenance.get("files") or []]


def materialize(
    cache: Path,
    provenance: dict[str, Any],
    files: Callable[[], Iterable[tuple[str, bytes]]],
) -> Path:
    """The folder on this node holding ``provenance``'s files, written from ``files()`` the first time.

    Written into an owned temporary, each file checked against its recorded size and sha256, then renamed
    into place whole: a folder under its final name is complete (a task killed halfway leaves only a
    temporary, swept later). Two tasks on one node racing here both finish; the first rename wins."""
    final = Path(cache) / "upstream" / bundle_key(provenance)
    if final.is_dir():
        return final
    expected = {f["path"]: f for f in provenance.get("files") or []}
    tmp = atomic.new_temp_dir(final.parent, "upstream")
    try:
        for rel, data in files():
            record = expected.get(rel)
            if record is None or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise SourceError(f"upstream file '{rel}' is not one of the variant's files")
            digest = hashlib.sha256(data).hexdigest()
            if len(data) != record.get("size", len(data)) or digest != record.get("sha256", digest):
                raise SourceError(
                    f"upstream file '{rel}' arrived with sha256 {digest} ({len(data)} bytes); the driver "
                    f"fetched {record.get('sha256')} ({record.get('size')} bytes)"
                )
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
