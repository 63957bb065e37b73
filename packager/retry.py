"""Retrying HTTP for every weightpack client (publishing, ``https://`` sources): urllib3's
:class:`~urllib3.util.Retry` mounted on a requests session through an ``HTTPAdapter``.

408, 429 and 5xx answers and connection errors/timeouts are retried with exponential backoff,
``Retry-After`` (seconds or an HTTP date) honoured up to the cap; any other 4xx is final. Every verb is
retried (a retried POST is safe: the models service answers 409 to a repeat), and urllib3 rewinds a file
body before sending it again.

What is ours (:class:`NoticeRetry`): the schedule (the first retry already waits the base delay; urllib3's
waits 0), a ``Retry-After`` it cannot parse falls back to the backoff instead of raising, the cap applied to
``Retry-After`` too, and a one-line notice per retry.

urllib3 logs the URL of what it retries (a ``WARNING`` after a broken connection) and, at ``DEBUG``, of every
request; a signed upload or download URL carries its signature in the query. :func:`redact_http_logs`
(called wherever a client is set up: :func:`mount`, the stores, verify-remote's downloads) puts a
:class:`RedactingFilter` on urllib3's loggers, so those records lose user-info, Authorization-like values
and queries before any handler sees them, in a plain ``pack`` and in an application that embeds weightpack
and configures logging alike.

Tunable by environment for slow links and for tests: ``WEIGHTPACK_RETRY_ATTEMPTS`` (default 5),
``WEIGHTPACK_RETRY_BASE_S`` (first delay, default 0.5, doubled each try, capped at
``WEIGHTPACK_RETRY_MAX_S``, default 8) and ``WEIGHTPACK_HTTP_TIMEOUT_S`` (per request, default 60).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from packager.redact import redact_log_text

RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        def num(name: str, default: float) -> float:
            try:
                return float(os.environ.get(name, default))
            except ValueError:
                return default

        return cls(
            attempts=max(1, int(num("WEIGHTPACK_RETRY_ATTEMPTS", cls.attempts))),
            base_delay_s=num("WEIGHTPACK_RETRY_BASE_S", cls.base_delay_s),
            max_delay_s=num("WEIGHTPACK_RETRY_MAX_S", cls.max_delay_s),
            timeout_s=num("WEIGHTPACK_HTTP_TIMEOUT_S", cls.timeout_s),
        )

    def retry(self, notice: Callable[[str], None] | None = None) -> NoticeRetry:
        """The urllib3 ``Retry`` for this policy; ``notice`` gets one line per retry."""
        return NoticeRetry(
            total=self.attempts - 1,
            allowed_methods=None,  # every verb
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.base_delay_s,
            backoff_max=self.max_delay_s,
            raise_on_status=False,  # the last answer comes back; send() turns it into HttpFailure
            raise_on_redirect=False,
            notice=notice,
        )


class NoticeRetry(Retry):
    """urllib3's Retry with our first delay, a lenient ``Retry-After`` and a notice per retry."""

    def __init__(self, *args: Any, notice: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notice = notice

    def new(self, **kw: Any) -> NoticeRetry:
        kw.setdefault("notice", self.notice)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        """``base * 2**(n-1)`` after the n-th failure in a row, capped (urllib3 waits 0 after the first)."""
        failures = len(self.history)
        if failures == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)))

    def get_retry_after(self, response: Any) -> float | None:
        """The server's ``Retry-After`` capped at ``backoff_max``; None when absent or unparseable."""
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else min(float(seconds), self.backoff_max)

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> Any:
        new = super().increment(method, url, *args, **kwargs)  # raises once exhausted
        if self.notice is not None:
            last = new.history[-1]
            cause = f"HTTP {last.status}" if last.status else type(last.error).__name__
            response = kwargs.get("response") or (args[0] if args else None)
            wait = (new.get_retry_after(response) if response is not None else None) or new.get_backoff_time()
            done = len(new.history)
            self.notice(f"{cause}; retry {done}/{done + (new.total or 0)} in {wait:.2g}s")
        return new


HTTP_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.http2.connection",
    "urllib3.contrib.pyopenssl",
    "urllib3.contrib.emscripten.response",
)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) with :func:`packager.redact.redact_log_text`; never
    drops a record. A logger's filter runs before any handler, whoever configured the handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # logging's own error path would print the raw arguments: redact those instead
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact_log_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        return True


_FILTER = RedactingFilter()


def redact_http_logs() -> None:
    """Put the redacting filter on every urllib3 logger (idempotent). A filter on a logger applies only to
    the records logged on that very logger, not to those of its children passing through, hence each one by
    name, plus any other ``urllib3.*`` logger created by then."""
    names = set(HTTP_LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith("urllib3.")}
    for name in sorted(names):
        logging.getLogger(name).addFilter(_FILTER)  # addFilter ignores a filter already there


def mount(session: requests.Session, url: str, retry: Retry) -> None:
    """Make ``session`` retry requests to ``url``'s scheme by ``retry``. The adapter (and its connection
    pool) is mounted once and kept; only its ``max_retries`` changes, so use a session from one thread.
    urllib3's log records of these requests are redacted (:func:`redact_http_logs`)."""
    redact_http_logs()
    prefix = "https://" if url.lower().startswith("https://") else "http://"
    adapter = session.get_adapter(url)
    if not isinstance(adapter, RetryingAdapter):
        adapter = RetryingAdapter()
        session.mount(prefix, adapter)
    adapter.max_retries = retry


class RetryingAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose ``max_retries`` :func:`mount` sets per request."""


def backoff(policy: RetryPolicy, failures: int) -> float:
    """The wait after ``failures`` failures in a row: ``base * 2**(failures-1)``, capped."""
    return float(min(policy.max_delay_s, policy.base_delay_s * 2 ** max(0, failures - 1)))


def cause(exc: BaseException) -> str:
    """``Type: message`` of the innermost reason a request failed (a refused or reset connection, a
    timeout), without the URL requests and urllib3 put in their messages: a signed URL carries
    credentials in its query."""
    inner = exc
    for _ in range(8):
        nxt = getattr(inner, "reason", None)
        if not isinstance(nxt, BaseException) and inner.args and isinstance(inner.args[0], BaseException):
            nxt = inner.args[0]
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    return f"{type(inner).__name__}: {re.sub(r'[a-z]+://[^ )]+|url: [^ )]+', '<url>', str(inner))}"
