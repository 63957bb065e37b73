"""Parsing and validation of source URIs (``hf://``, ``pkg://``, ``https://``, ``gs://``, local paths)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ..errors import SourceError
from ..redact import redact_query, redact_url

ACCEPTED_FORMS = (
    "hf://<org>/<repo>[@<revision>], "
    "pkg://<python_module>/<sub/path>, "
    "https://<host>/<path/file>[#sha256=<hex>], "
    "gs://<bucket>/<object>, "
    "file:///<absolute/path>, or a local path (absolute or relative)"
)

_HF_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HF_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")

DEFAULT_HF_REVISION = "main"


@dataclass(frozen=True)
class SourceSpec:
    """A validated source URI.

    ``location`` depends on ``kind``: the repo id (hf), the absolute path (local), the URL without its
    fragment (https), ``module/sub/path`` (pkg) or ``bucket/object`` (gs).
    """

    uri: str
    kind: str
    location: str
    revision: str | None = None
    sha256: str | None = None

    @property
    def module(self) -> str:
        return self.location.split("/", 1)[0]

    @property
    def subpath(self) -> str:
        parts = self.location.split("/", 1)
        return parts[1] if len(parts) > 1 else ""


def _bad(uri: str, problem: str) -> SourceError:
    return SourceError(f"invalid source {public_uri(uri)!r}: {problem}. Accepted forms: {ACCEPTED_FORMS}")


def public_uri(uri: str) -> str:
    """``uri`` fit to print or record: user-info and any query (a signed URL's credentials) masked."""
    return redact_query(redact_url(str(uri)))


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _clean_relative(uri: str, sub: str) -> str:
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _bad(uri, "'..' is not allowed in a sub-path")
    return "/".join(parts)


def _parse_hf(uri: str, rest: str) -> SourceSpec:
    if "#" in rest:
        raise _bad(uri, "hf:// sources do not take a '#' fragment")
    repo, sep, revision = rest.partition("@")
    repo = repo.strip("/")
    if sep and not revision:
        raise _bad(uri, "empty revision after '@'")
    if not repo:
        raise _bad(uri, "missing repo id after hf://")
    segments = repo.split("/")
    if len(segments) > 2 or not all(_HF_SEGMENT.match(s) for s in segments):
        raise _bad(uri, f"{repo!r} is not a Hub repo id (expected <org>/<repo>)")
    revision = revision or DEFAULT_HF_REVISION
    if not _HF_REVISION.match(revision) or ".." in revision:
        raise _bad(uri, f"{revision!r} is not a valid revision (branch, tag or commit sha)")
    return SourceSpec(uri=uri, kind="hf", location=repo, revision=revision)


def _parse_pkg(uri: str, rest: str) -> SourceSpec:
    module, _, sub = rest.partition("/")
    if not module or not _MODULE.match(module):
        raise _bad(uri, f"{module!r} is not a Python module name")
    sub = _clean_relative(uri, sub)
    return SourceSpec(uri=uri, kind="pkg", location=f"{module}/{sub}" if sub else module)


def _parse_http(uri: str, scheme: str) -> SourceSpec:
    parts = urlsplit(uri)
    if not parts.hostname:
        raise _bad(uri, "missing host")
    if scheme == "http" and not _is_loopback(parts.hostname):
        raise _bad(uri, "plain http:// is only allowed for loopback hosts; use https://")
    name = unquote(parts.path.rsplit("/", 1)[-1])
    if not name or name in (".", ".."):
        raise _bad(uri, "the URL must name a file (its last path segment is empty)")
    sha256 = None
    if parts.fragment:
        key, _, value = parts.fragment.partition("=")
        if key != "sha256" or not _SHA256.match(value):
            raise _bad(uri, "the only accepted fragment is '#sha256=<64 hex digits>'")
        sha256 = value.lower()
    location = parts._replace(fragment="").geturl()
    return SourceSpec(uri=uri, kind="https", location=location, sha256=sha256)


def _parse_gs(uri: str, rest: str) -> SourceSpec:
    bucket, _, obj = rest.partition("/")
    if not bucket or not _GCS_BUCKET.match(bucket):
        raise _bad(uri, f"{bucket!r} is not a bucket name")
    if not obj or obj.endswith("/"):
        raise _bad(uri, "missing object name after the bucket")
    return SourceSpec(uri=uri, kind="gs", location=f"{bucket}/{obj}")


def parse_uri(uri: str) -> SourceSpec:
    """Validate ``uri`` and split it into a :class:`SourceSpec`; raises SourceError naming accepted forms."""
    if not isinstance(uri, str) or not uri.strip():
        raise _bad(str(uri), "empty source")
    uri = uri.strip()
    match = _SCHEME.match(uri)
    if not match:
        return SourceSpec(uri=uri, kind="local", location=str(Path(uri).expanduser().absolute()))
    scheme = match.group(1).lower()
    rest = uri[match.end() :]
    if scheme == "hf":
        return _parse_hf(uri, rest)
    if scheme == "pkg":
        return _parse_pkg(uri, rest)
    if scheme in ("https", "http"):
        return _parse_http(uri, scheme)
    if scheme == "gs":
        return _parse_gs(uri, rest)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise _bad(uri, "file:// URIs must be local (file:///path)")
        path = url2pathname(parts.path)
        if not path:
            raise _bad(uri, "missing path after file://")
        return SourceSpec(uri=uri, kind="local", location=str(Path(path).expanduser().absolute()))
    raise _bad(uri, f"unsupported scheme '{scheme}://'")


def unpinned_warnings(recipe_path: object, variant_sources: dict[str, str]) -> list[str]:
    """Sources whose content can change under an unchanged recipe: ``hf://org/repo`` without
    ``@revision`` follows the ``main`` branch, so the same command may package different weights."""
    return [
        f"{recipe_path}: variants.{variant}.source {uri!r} has no @revision and follows the "
        f"'main' branch; pin it ({uri}@<commit sha>) so re-runs package the same weights"
        for variant, uri in variant_sources.items()
        if uri.startswith("hf://") and "@" not in uri
    ]
