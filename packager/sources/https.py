"""``https://host/file[#sha256=<hex>]``: one file, streamed to the cache, resumable, locked, atomic, verified.

Requests are retried by :mod:`packager.retry` (urllib3's ``Retry``: busy answers, ``Retry-After``,
refused connections). What stays hand-written is resuming a body cut mid-way with a ``Range`` request,
across attempts and across runs (the ``.incomplete`` file), with our progress callback. The libraries
looked at lose a needed feature: pooch downloads whole files only (no resume); huggingface_hub's
``http_get`` resumes, but logs the full URL (a signed URL's credentials) at WARNING on every retry, retries
no 5xx, and raises Hub-specific errors for any server.

Layout under ``cache_dir/"https"``: ``<key>/<filename>`` (the only file in that folder once complete),
``<key>/<filename>.incomplete`` while downloading, and ``<key>.lock`` / ``<key>.json`` (resolved URL) beside
the folder, where ``<key>`` is the sha256 of the URL without its fragment.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from filelock import FileLock

from .. import atomic
from ..errors import NetworkError, SourceError
from ..hashing import CHUNK_SIZE as CHUNK
from ..hashing import sha256_file
from ..retry import RetryPolicy, backoff, cause, mount, retryable_status
from ._types import Located, ProgressCallback
from .hash_cache import HashCache
from .spec import SourceSpec

if TYPE_CHECKING:
    import requests

INCOMPLETE = ".incomplete"


def _network_failures() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def cache_paths(cache_dir: Path, url: str, kind: str = "https") -> tuple[Path, Path, Path]:
    """``(final file, lock file, meta file)`` for ``url`` under ``cache_dir/kind``."""
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()
    base = Path(cache_dir) / kind
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).replace("\\", "_")
    return base / key / name, base / f"{key}.lock", base / f"{key}.json"


def finish(
    tmp: Path, final: Path, expected: str | None, hashes: HashCache, desc: str, total: int | None = None
) -> None:
    """Verify the completed ``tmp`` (size, sha256) and rename it over ``final``; delete it if it is bad."""
    size = tmp.stat().st_size
    if total is not None and size != total:
        raise SourceError(f"{desc}: got {size} bytes, expected {total}; run again to resume")
    digest = sha256_file(tmp)
    if expected and digest != expected:
        tmp.unlink(missing_ok=True)
        raise SourceError(
            f"{desc}: sha256 mismatch: expected {expected}, got {digest}; the file was discarded"
        )
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    hashes.put(final, digest)


def reuse(final: Path, expected: str | None, hashes: HashCache, desc: str) -> bool:
    """True when a complete cached file can be used; a cached file with another sha256 raises."""
    if not final.is_file():
        return False
    if expected:
        _, digest = hashes.sha256(final)
        if digest != expected:
            raise SourceError(
                f"{desc}: the cached file {final} has sha256 {digest}, not the expected {expected}; "
                "delete it to download again"
            )
    return True


def _download(
    session: requests.Session,
    url: str,
    tmp: Path,
    desc: str,
    progress: ProgressCallback | None,
    timeout: float,
) -> tuple[str, int | None]:
    """One request: append to ``tmp`` from where it stops. Returns ``(final URL, total size or None)``.
    Busy answers and connection failures are retried by the session (urllib3); a connection dropped
    mid-body raises :class:`_Dropped` with the bytes so far kept in ``tmp``."""
    done = tmp.stat().st_size if tmp.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if done:
        headers["Range"] = f"bytes={done}-"
    with session.get(url, headers=headers, stream=True, timeout=(10, timeout), allow_redirects=True) as resp:
        if resp.status_code == 416 and done:  # the partial file is already whole (or bigger): start over
            tmp.unlink()
            return _download(session, url, tmp, desc, progress, timeout)
        if resp.status_code >= 400:  # a busy or failing server after every retry is the network's
            kind = NetworkError if retryable_status(resp.status_code) else SourceError
            raise kind(f"{desc}: HTTP {resp.status_code} {resp.reason}")
        if done and resp.status_code != 206:  # server ignored the Range: restart from zero
            done = 0
        length = resp.headers.get("Content-Length")
        total = done + int(length) if length and length.isdigit() else None
        if progress:
            progress(desc, done, total)
        with open(tmp, "ab" if done else "wb") as handle:
            for chunk in _chunks(resp):
                handle.write(chunk)
                done += len(chunk)
                if progress:
                    progress(desc, done, total)
        return _public_url(resp.url), total


class _Dropped(Exception):
    """The connection broke while the body was streaming; what arrived is on disk."""


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    """Up to 1 MiB at a time, keeping whatever arrived before a dropped connection (so it can be resumed).

    ``iter_content(CHUNK)`` waits for a whole chunk and loses a partial one when the connection drops;
    urllib3's ``read1`` returns what is there.
    """
    import requests
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    raw = resp.raw
    try:
        if not hasattr(raw, "read1"):
            yield from resp.iter_content(chunk_size=CHUNK)
            return
        while chunk := raw.read1(CHUNK, decode_content=True):
            yield chunk
    except (ProtocolError, ReadTimeoutError, requests.ConnectionError, requests.Timeout) as exc:
        raise _Dropped(cause(exc)) from None
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _Dropped(cause(exc)) from None


def _public_url(url: str) -> str:
    """The URL without user info or query string (signed URLs carry credentials there)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def _download_resuming(
    url: str, tmp: Path, desc: str, progress: ProgressCallback | None
) -> tuple[str, int | None]:
    """Download into ``tmp``, resuming with a Range request after each dropped connection (up to
    ``WEIGHTPACK_RETRY_ATTEMPTS`` in a row). urllib3 can retry a request but not resume a body: this loop
    is the part no library here does (see the module docstring)."""
    import requests

    policy = RetryPolicy.from_env()
    with requests.Session() as session:
        mount(session, url, policy.retry())
        for attempt in range(1, policy.attempts + 1):
            try:
                return _download(session, url, tmp, desc, progress, policy.timeout_s)
            except _Dropped as exc:  # keep the partial file: the next attempt resumes it
                if attempt == policy.attempts:
                    raise NetworkError(
                        f"{desc}: download failed after {attempt} attempts ({exc}); run again to resume"
                    ) from None
                time.sleep(backoff(policy, attempt))
            except requests.RequestException as exc:  # urllib3 already retried it
                kind = NetworkError if isinstance(exc, _network_failures()) else SourceError
                raise kind(f"{desc}: download failed: {cause(exc)}; run again to resume") from None
    raise AssertionError("unreachable")


def fetch_https(
    spec: SourceSpec, *, cache_dir: Path, hashes: HashCache, progress: ProgressCallback | None
) -> Located:
    url, desc = spec.location, _public_url(spec.location)
    final, lock, meta = cache_paths(cache_dir, url)
    if not final.name:
        raise SourceError(f"{desc}: the URL does not name a file")
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if not reuse(final, spec.sha256, hashes, desc):
            tmp = final.with_name(final.name + INCOMPLETE)
            resolved, total = _download_resuming(url, tmp, desc, progress)
            finish(tmp, final, spec.sha256, hashes, desc, total)
            atomic.write_json(meta, {"url": url, "resolved": resolved})
    try:
        resolved = json.loads(meta.read_text("utf-8"))["resolved"]
    except (OSError, ValueError, KeyError):
        resolved = url
    return Located(path=final.parent, resolved=resolved, files=[(final.name, final)])
