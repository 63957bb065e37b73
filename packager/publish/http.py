"""One logical request to the models service or a signed upload URL: retried by :mod:`packager.retry`
(urllib3's ``Retry``: backoff, ``Retry-After``), answered with the response or a :class:`HttpFailure` whose
message never holds the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import requests

from ..retry import RetryPolicy, cause, mount, retryable_status
from .errors import PublishError, PublishNetworkError
from .secret import Secret


class HttpFailure(PublishError):
    """A request that did not succeed after retries (or failed finally); ``status`` is None for a
    connection error. One that never got an answer, or only busy or failing ones, is the network's (exit
    3); a final refusal (4xx) is a failed publish (exit 1)."""

    def __init__(self, message: str, status: int | None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        if status is None or retryable_status(status):
            self.exit_code = PublishNetworkError.exit_code


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
    redact = secret.redact if secret is not None else (lambda s: s)
    notice = (lambda line: on_retry(redact(f"{what}: {line}"))) if on_retry else None
    mount(session, url, policy.retry(notice))
    body = data_factory() if data_factory else None
    try:
        response = session.request(
            method,
            url,
            headers=all_headers,
            json=json_body,
            data=body,
            timeout=policy.timeout_s,
            auth=_Auth(secret),  # explicit: requests would otherwise apply URL user-info or ~/.netrc
        )
    except requests.RequestException as exc:
        raise HttpFailure(
            redact(f"{what}: failed after {policy.attempts} attempts; last: {cause(exc)}"), None
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


class _Auth(requests.auth.AuthBase):
    """``Authorization: Bearer <secret>``, or no Authorization at all (signed upload URLs). Given as the
    request's auth, it is what requests applies instead of Basic auth from the URL's user-info or
    ``~/.netrc``; requests drops it on a redirect to another host."""

    def __init__(self, secret: Secret | None) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self.secret is not None:
            request.headers["Authorization"] = f"Bearer {self.secret.reveal()}"
        return request


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
