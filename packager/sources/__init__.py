"""Fetch upstream weights from a source URI into a local directory, with provenance.

Accepted sources: ``hf://org/repo[@revision]``, ``pkg://module/sub/path``, ``https://host/file[#sha256=hex]``
(plain ``http://`` for loopback hosts only), ``gs://bucket/object``, ``file:///path`` or a local path.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ._types import Located, ProgressCallback
from .hash_cache import HashCache, file_records
from .spec import ACCEPTED_FORMS, SourceSpec, parse_uri, public_uri, unpinned_warnings

__all__ = [
    "ACCEPTED_FORMS",
    "FetchedSource",
    "ProgressCallback",
    "SourceSpec",
    "fetch",
    "parse_uri",
    "public_uri",
    "unpinned_warnings",
]


@dataclass(frozen=True)
class FetchedSource:
    """A local directory holding the upstream files, and where they came from.

    ``path`` is the directory (for a one-file source, the file's parent). ``provenance`` is JSON-able:
    ``uri``, ``kind``, ``resolved`` (commit sha, final URL or absolute path), ``revision`` (as asked),
    ``fetched_at`` (ISO UTC) and ``files`` (``[{"path", "size", "sha256"}]`` sorted by path, relative to
    ``path``). It never holds a token.
    """

    path: Path
    provenance: dict[str, Any]

    @property
    def files(self) -> list[str]:
        return [f["path"] for f in self.provenance["files"]]


def fetch(
    uri: str,
    *,
    cache_dir: Path,
    allow_patterns: list[str] | None = None,
    token: str | None = None,
    progress: ProgressCallback | None = None,
) -> FetchedSource:
    """Fetch ``uri`` (downloading into ``cache_dir`` when remote) and describe what was fetched."""
    spec = parse_uri(uri)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if allow_patterns is not None and spec.kind != "hf":
        raise SourceError(f"{uri}: allow_patterns only applies to hf:// sources")
    hashes = HashCache(cache_dir)
    located: Located
    if spec.kind == "hf":
        from .hf import fetch_hf

        located = fetch_hf(
            spec, cache_dir=cache_dir, allow_patterns=allow_patterns, token=token, progress=progress
        )
    elif spec.kind == "local":
        from .local import fetch_local

        located = fetch_local(spec)
    elif spec.kind == "pkg":
        from .pkg import fetch_pkg

        located = fetch_pkg(spec)
    elif spec.kind == "https":
        from .https import fetch_https

        located = fetch_https(spec, cache_dir=cache_dir, hashes=hashes, progress=progress)
    elif spec.kind == "gs":
        from .gs import fetch_gs

        located = fetch_gs(spec, cache_dir=cache_dir, hashes=hashes, progress=progress)
    else:  # parse_uri only returns the kinds above
        raise SourceError(f"{uri}: unsupported source kind {spec.kind!r}")
    files = file_records(located.files, hashes)
    hashes.save()
    provenance: dict[str, Any] = {
        "uri": public_uri(uri),  # never the credentials a URL may carry (report.json, every manifest)
        "kind": spec.kind,
        "resolved": located.resolved,
        "revision": spec.revision,
        "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": files,
        **located.extra,
    }
    if token:
        _assert_no_token(provenance, token)
    return FetchedSource(path=located.path, provenance=provenance)


def _assert_no_token(provenance: dict[str, Any], token: str) -> None:
    import json

    if token in json.dumps(provenance):
        raise SourceError("refusing to record provenance that contains the access token")
