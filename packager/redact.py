"""Redaction of credentials before anything is printed or written.

Only whole values are replaced, never fragments of words: URL user-info (``http://user:pass@host`` ->
``http://***@host``: everything up to the authority's last ``@``, as requests and urllib3 read it, so a
password holding ``@`` is masked whole), the value of an Authorization-like header or field echoed in a
message, and a known secret where it stands as a whole token. A secret too short to be told apart from
ordinary words is not hunted for in free text (a one-character secret would otherwise turn every message
into asterisks, and the asterisks would give it away); it is still never printed, since it only ever
travels in a header.

Log records of the HTTP libraries (:func:`redact_log_text`) also lose every URL query: a signed URL carries
its signature and credential there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MASK = "***"
MIN_TOKEN_SECRET = 8
# greedy up to the last '@' before the path, query or fragment: the user-info as urllib3 and requests parse it
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]+@")
# a query after a URL or path (``/upload?X-Goog-Signature=...``); a '?' ending a sentence is left alone
_QUERY = re.compile(r"(?<=[^\s?])\?[^\s\"'<>#]+")
_HEADER = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-api-key|api[_-]?key|token|secret|password)"
    r"(\"?\s*[:=]\s*\"?)(bearer\s+|basic\s+|token\s+)?[^\s\",;}]+"
)
_TOKEN_EDGE = r"A-Za-z0-9_\-+/="


def redact_url(url: str) -> str:
    """``scheme://user:pass@host/...`` -> ``scheme://***@host/...``; other URLs unchanged."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL user-info, Authorization-like values and whole-token secrets masked."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)
    for secret in secrets:
        if secret and len(secret) >= MIN_TOKEN_SECRET:
            pattern = rf"(?<![{_TOKEN_EDGE}]){re.escape(secret)}(?![{_TOKEN_EDGE}])"
            text = re.sub(pattern, MASK, text)
    return text


def redact_query(text: str) -> str:
    """Every URL query in ``text`` masked (``/upload?X-Goog-Signature=abc`` -> ``/upload?***``): signed URLs
    hold their signature there, and a path without its query still says which request it was."""
    return _QUERY.sub(f"?{MASK}", text)


def redact_log_text(text: str) -> str:
    """A log line of an HTTP library, fit to keep: user-info, Authorization-like values and URL queries
    masked."""
    return redact_query(redact_text(text))


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line fit for a report: URL user-info masked in every argument."""
    return [redact_url(arg) for arg in argv]
