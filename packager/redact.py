"""Redaction of credentials before anything is printed or written.

Only whole values are replaced, never fragments of words: URL user-info (``http://user:pass@host`` ->
``http://***@host``), the value of an Authorization-like header or field echoed in a message, and a known
secret where it stands as a whole token. A secret too short to be told apart from ordinary words is not
hunted for in free text (a one-character secret would otherwise turn every message into asterisks, and
the asterisks would give it away); it is still never printed, since it only ever travels in a header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MASK = "***"
MIN_TOKEN_SECRET = 8
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
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


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line fit for a report: URL user-info masked in every argument."""
    return [redact_url(arg) for arg in argv]
