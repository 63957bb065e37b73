"""Reading a registered package back for ``pack verify-remote``: its file list checked as hostile data, then
every file downloaded md5-verified under limits that hold for the package as a whole.

A registry (or whoever answers in its place) may list anything, so before a byte is fetched the list goes
through the validator a zip goes through (names, count, the sizes it declares), every file must carry an
``md5Hash`` of 32 lower-case hex digits (the consumer refuses others) and a declared size must be a whole
number of bytes (a negative one would cancel out the others' in the total). While downloading, the bytes
received so far count against ``--max-extract-bytes`` for the whole package, since most listings declare no
sizes at all, and a file must come to exactly the size declared for it. Each of these is a refusal (exit
2), never a failed check: the data, not the package's behaviour, is at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from packager.archive import CHUNK_SIZE, Limits, check_file_list
from packager.errors import ArchiveError, UnsafeArchiveError
from packager.hashing import new_hash
from packager.redact import redact_url
from packager.retry import redact_http_logs, retryable_status

from .errors import PublishError, PublishNetworkError
from .registry import RegistryClient

SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MD5 = re.compile(r"[0-9a-f]{32}")
MD5_ACCEPTED = "accepted: each file with an md5Hash of 32 lower-case hex digits, as the consumer requires"
SIZE_ACCEPTED = "accepted: exactly the size the registry declares for it"


def declared_size(record: dict[str, Any], label: str) -> int | None:
    """The ``size`` the registry lists for a file: None when it lists none; ArchiveError when it is not a
    whole number of bytes (an integer, or a string of digits)."""
    size = record.get("size")
    if size is None:
        return None
    if isinstance(size, str) and size.isdigit():
        return int(size)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    raise ArchiveError(
        f"{label}: {record.get('fileHandle')}: declared size {size!r} is not a whole number of bytes "
        "(accepted: a non-negative integer, or no size)"
    )


def check_package_files(label: str, files: list[dict[str, Any]], limits: Limits) -> None:
    """Refuse (ArchiveError) a file list that a zip with these names and sizes would be refused for, or
    whose files lack a well-formed md5Hash or have a size that is no size."""
    sizes = [(str(f.get("fileHandle")), declared_size(f, label)) for f in files]
    check_file_list(label, sizes, limits)  # names, links, reserved names, clashes, count, declared total
    unhashed = [str(f.get("fileHandle")) for f in files if not f.get("md5Hash")]
    if unhashed:
        raise ArchiveError(f"{label}: files without md5Hash: {unhashed} ({MD5_ACCEPTED})")
    malformed = [f"{f.get('fileHandle')}: {f.get('md5Hash')!r}" for f in files if not _is_md5(f["md5Hash"])]
    if malformed:
        raise ArchiveError(f"{label}: malformed md5Hash: {', '.join(malformed)} ({MD5_ACCEPTED})")


def _is_md5(value: Any) -> bool:
    return isinstance(value, str) and MD5.fullmatch(value) is not None


def download_files(
    client: RegistryClient, files: list[dict[str, Any]], dest: Path, max_total: int, label: str
) -> None:
    """Download every file under ``dest``; the package as a whole may not exceed ``max_total`` bytes,
    whether or not the registry declared the sizes (UnsafeArchiveError as soon as it would)."""
    total = 0
    for record in files:
        budget = max_total - total
        try:
            total += download(client, record, dest, budget, declared_size(record, label))
        except _OverBudget:
            raise UnsafeArchiveError(
                f"{label}: more than {max_total} bytes in total (accepted: at most --max-extract-bytes "
                f"{max_total} for the whole package, the files downloaded so far counted)"
            ) from None


class _OverBudget(Exception):
    """The file took the package past its total budget."""


def download(
    client: RegistryClient,
    record: dict[str, Any],
    dest: Path,
    budget: int | None = None,
    declared: int | None = None,
) -> int:
    """Download one package file under ``dest`` (temp name, md5 check, then rename); returns its size. It
    stops as soon as it passes ``budget`` (what is left of the package's total) or the ``declared`` size,
    so a registry can fill neither the disk nor a file beyond its word."""
    handle = str(record.get("fileHandle", ""))
    if not handle or not all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in handle.split("/")):
        raise PublishError(f"file handle {handle!r} is not a safe relative path")
    redact_http_logs()  # the download URL may be signed: urllib3's records of it lose the query
    final = dest / handle
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial")  # inside verify-remote's owned scratch folder
    for attempt in range(1, client.policy.attempts + 1):
        try:
            digest, received = _fetch(client, record, tmp, budget, declared)
        except (requests.RequestException, PublishError) as exc:
            tmp.unlink(missing_ok=True)
            if attempt == client.policy.attempts:
                network = isinstance(exc, (requests.ConnectionError, requests.Timeout)) or (
                    getattr(exc, "exit_code", None) == PublishNetworkError.exit_code
                )
                kind = PublishNetworkError if network else PublishError
                raise kind(f"download {handle}: {exc}") from None
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if declared is not None and received != declared:
            tmp.unlink(missing_ok=True)
            raise ArchiveError(
                f"{handle}: {received} bytes received, the registry declares {declared} ({SIZE_ACCEPTED})"
            )
        if digest != record["md5Hash"]:
            tmp.unlink(missing_ok=True)
            raise PublishError(f"{handle}: md5 {digest} differs from the registry's {record['md5Hash']}")
        tmp.replace(final)
        return received
    raise PublishError(f"download {handle}: no attempts made")


def _fetch(
    client: RegistryClient, record: dict[str, Any], tmp: Path, budget: int | None, declared: int | None
) -> tuple[str, int]:
    """One attempt: stream the file to ``tmp``; (md5 hex, bytes received)."""
    handle = record["fileHandle"]
    url = record.get("downloadUrl")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ArchiveError(
            f"{handle}: downloadUrl {redact_url(str(url))!r} is not an http(s) URL (accepted: one)"
        )
    digest, received = new_hash("md5"), 0
    with requests.get(url, stream=True, timeout=client.policy.timeout_s) as r:
        if r.status_code != 200:
            kind = PublishNetworkError if retryable_status(r.status_code) else PublishError
            raise kind(f"download {handle}: HTTP {r.status_code}")
        with open(tmp, "wb") as out:
            for chunk in r.iter_content(CHUNK_SIZE):
                received += len(chunk)
                if declared is not None and received > declared:
                    raise UnsafeArchiveError(
                        f"{handle}: more than the {declared} bytes the registry declares ({SIZE_ACCEPTED})"
                    )
                if budget is not None and received > budget:
                    raise _OverBudget
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest(), received
