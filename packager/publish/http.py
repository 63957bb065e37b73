"""HTTP with retries: 408, 429 and 5xx answers and connection errors/timeouts are retried with exponential
backoff (honouring ``Retry-After`` up to the cap); any other 4xx is final.

Tunable by environment for slow links and for tests: ``WEIGHTPACK_RETRY_ATTEMPTS`` (default 5),
``WEIGHTPACK_RETRY_BASE_S`` (first delay, default 0.5, doubled each try, capped at
``WEIGHTPACK_RETRY_MAX_S``, default 8) and ``WEIGHTPACK_HTTP_TIMEOUT_S`` (per request, default 60).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests

from .errors import PublishError
from .secret import Secret


def retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


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

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_delay_s)
            except ValueError:
                pass
        return min(self.base_delay_s * (2 ** (attempt - 1)), self.max_delay_s)


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
    :class:`HttpFailure` with a message free of the secret. ``data_factory`` makes a fresh body per try
    (an open file), so a retried upload starts again from its first byte."""
    accept = set(accept)
    all_headers = dict(headers or {})
    if secret is not None:
        all_headers["Authorization"] = f"Bearer {secret.reveal()}"
    redact = secret.redact if secret is not None else (lambda s: s)
    last = ""
    for attempt in range(1, policy.attempts + 1):
        body = data_factory() if data_factory else None
        try:
            response = session.request(
                method, url, headers=all_headers, json=json_body, data=body, timeout=policy.timeout_s
            )
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
            status, retry_after = None, None
        else:
            if 200 <= response.status_code < 300 or response.status_code in accept:
                return response
            status, retry_after = response.status_code, response.headers.get("Retry-After")
            last = f"HTTP {status}: {response.text[:500]}"
            if not retryable_status(status):
                raise HttpFailure(
                    redact(f"{what}: {last} (not retried: a {status} answer is final)"),
                    status,
                    _json_or_none(response),
                )
        finally:
            if body is not None and hasattr(body, "close"):
                body.close()
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            if on_retry:
                on_retry(redact(f"{what}: {last}; retry {attempt}/{policy.attempts - 1} in {wait:.2g}s"))
            time.sleep(wait)
    raise HttpFailure(redact(f"{what}: failed after {policy.attempts} attempts; last: {last}"), status)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
