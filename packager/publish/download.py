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
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from packager.archive import CHUNK_SIZE, Limits, check_file_list
from packager.errors import ArchiveError, UnsafeArchiveError
from packager.hashing import new_hash
from packager.redact import redact_url
from packager.retry import backoff, cause, mount, retryable_status

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
    so a registry can fill neither the disk nor a file beyond its word.

    Requests are retried by the one policy (:mod:`packager.retry`: urllib3's ``Retry``, busy answers and
    refused connections with backoff, ``Retry-After`` honoured, any other 4xx final); a body cut mid-way
    is fetched again after the same backoff."""
    handle = str(record.get("fileHandle", ""))
    if not handle or not all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in handle.split("/")):
        raise PublishError(f"file handle {handle!r} is not a safe relative path")
    url, policy = str(record.get("downloadUrl", "")), client.policy
    final = dest / handle
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial")  # inside verify-remote's owned scratch folder
    if urlsplit(url).scheme not in ("http", "https"):
        raise ArchiveError(f"{handle}: downloadUrl {redact_url(url)!r} is not an http(s) URL (accepted: one)")
    with requests.Session() as session:
        mount(session, url, policy.retry())  # also redacts urllib3's records of the (maybe signed) URL
        for attempt in range(1, policy.attempts + 1):
            try:
                digest, received = _fetch(session, policy.timeout_s, handle, url, tmp, budget, declared)
                break
            except _Dropped as exc:  # the body broke off: the whole file again, after the backoff
                tmp.unlink(missing_ok=True)
                if attempt == policy.attempts:  # the network's fault: exit 3
                    raise PublishNetworkError(
                        f"download {handle}: failed after {attempt} attempts; last: {exc}"
                    ) from None
                time.sleep(backoff(policy, attempt))
            except requests.RequestException as exc:  # urllib3 already retried what is worth retrying
                tmp.unlink(missing_ok=True)
                network = isinstance(exc, (requests.ConnectionError, requests.Timeout))
                kind = PublishNetworkError if network else PublishError  # no answer: exit 3
                raise kind(
                    f"download {handle}: failed after {policy.attempts} attempts; last: {cause(exc)}"
                ) from None
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


class _Dropped(Exception):
    """The connection broke while the body was streaming."""


def _fetch(
    session: requests.Session,
    timeout: float,
    handle: str,
    url: str,
    tmp: Path,
    budget: int | None,
    declared: int | None,
) -> tuple[str, int]:
    """One request (retried by the session): stream the file to ``tmp``; (md5 hex, bytes received). An
    answer other than 200 once the retries are spent is final (PublishError)."""
    digest, received = new_hash("md5"), 0
    with session.get(url, stream=True, timeout=timeout) as r:
        if r.status_code != 200:
            busy = retryable_status(r.status_code)  # still busy after every retry: the network's (exit 3)
            again = " after every retry" if busy else " (final: not retried)"
            kind = PublishNetworkError if busy else PublishError
            raise kind(f"download {handle}: HTTP {r.status_code}{again}")
        with open(tmp, "wb") as out:
            try:
                for chunk in r.iter_content(CHUNK_SIZE):
                    received += len(chunk)
                    if declared is not None and received > declared:
                        more = f"more than the {declared} bytes the registry declares"
                        raise UnsafeArchiveError(f"{handle}: {more} ({SIZE_ACCEPTED})")
                    if budget is not None and received > budget:
                        raise _OverBudget
                    digest.update(chunk)
                    out.write(chunk)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Dropped(cause(exc)) from None
    return digest.hexdigest(), received
