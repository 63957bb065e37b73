"""HTTP with retries, by urllib3's :class:`~urllib3.util.Retry` mounted on the requests session through an
``HTTPAdapter``: 408, 429 and 5xx answers and connection errors/timeouts are retried with exponential
backoff, ``Retry-After`` (seconds or an HTTP date) honoured up to the cap; any other 4xx is final. Every
verb is retried (a retried POST is safe: the service answers 409 to a repeat), and urllib3 rewinds a file
body before sending it again.

What is ours: the schedule (the first retry already waits ``WEIGHTPACK_RETRY_BASE_S``; urllib3's waits 0),
a ``Retry-After`` it cannot parse falls back to the backoff instead of raising, a one-line notice per retry
(``on_retry``), and messages free of the secret.

Tunable by environment for slow links and for tests: ``WEIGHTPACK_RETRY_ATTEMPTS`` (default 5),
``WEIGHTPACK_RETRY_BASE_S`` (first delay, default 0.5, doubled each try, capped at
``WEIGHTPACK_RETRY_MAX_S``, default 8) and ``WEIGHTPACK_HTTP_TIMEOUT_S`` (per request, default 60).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from .errors import PublishError
from .secret import Secret

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


class HttpFailure(PublishError):
    """A request that did not succeed after retries (or failed finally); ``status`` is None for a
    connection error."""

    def __init__(self, message: str, status: int | None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    policy: RetryPolicy,
    secret: Secret | None = None,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data_factory: Callable[[], Any] | None = None,
    accept: Iterable[int] = (),
    on_retry: Callable[[str], None] | None = None,
) -> requests.Response:
    """One logical request with retries. 2xx and statuses in ``accept`` are returned; anything else raises
    :class:`HttpFailure` with a message free of the secret. ``data_factory`` opens the body (a file), which
    urllib3 rewinds for each retry; it is closed here."""
    accept = set(accept)
    all_headers = dict(headers or {})
    if secret is not None:
        all_headers["Authorization"] = f"Bearer {secret.reveal()}"
    redact = secret.redact if secret is not None else (lambda s: s)
    notice = (lambda line: on_retry(redact(f"{what}: {line}"))) if on_retry else None
    _adapter(session, url).max_retries = policy.retry(notice)
    body = data_factory() if data_factory else None
    try:
        response = session.request(
            method, url, headers=all_headers, json=json_body, data=body, timeout=policy.timeout_s
        )
    except requests.RequestException as exc:
        raise HttpFailure(
            redact(f"{what}: failed after {policy.attempts} attempts; last: {_cause(exc)}"), None
        ) from None
    finally:
        if body is not None and hasattr(body, "close"):
            body.close()
    status = response.status_code
    if 200 <= status < 300 or status in accept:
        return response
    last = f"HTTP {status}: {response.text[:500]}"
    if retryable_status(status):
        raise HttpFailure(redact(f"{what}: failed after {policy.attempts} attempts; last: {last}"), status)
    raise HttpFailure(
        redact(f"{what}: {last} (not retried: a {status} answer is final)"), status, _json_or_none(response)
    )


def _adapter(session: requests.Session, url: str) -> HTTPAdapter:
    """The session's retrying adapter for ``url``'s scheme, mounted on first use (pools are kept between
    calls; a session is used by one thread at a time)."""
    prefix = "https://" if url.lower().startswith("https://") else "http://"
    adapter = session.get_adapter(url)
    if not isinstance(adapter, _RetryingAdapter):
        adapter = _RetryingAdapter()
        session.mount(prefix, adapter)
    return adapter


class _RetryingAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose ``max_retries`` :func:`send` sets per request."""


def _cause(exc: requests.RequestException) -> str:
    """The innermost reason urllib3 gave up (a reset connection, a read timeout), not the wrapper."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    inner = reason if isinstance(reason, BaseException) else exc
    return f"{type(inner).__name__}: {inner}"


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
