"""The models-service secret: read from the environment, sent only in an Authorization header.

:class:`Secret` never shows its value in ``str``/``repr``; :meth:`Secret.redact` removes it from any text
(an error body that echoes headers, an exception message) before that text is printed or raised: whole
values only, never fragments of words (see :mod:`packager.redact`).
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import unquote, urlsplit

from packager.redact import MASK, redact_text, redact_url

from .errors import PublishConfigError, PublishInputError

ENV_SECRET = "MODELS_SERVICE_INTERNAL_SECRET"
__all__ = ["ENV_SECRET", "MASK", "Secret", "secret_from_env"]


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        return redact_text(text, [self._value])

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __reduce__(self) -> object:  # never pickled or deep-copied into something that could print it
        raise TypeError("a Secret cannot be serialised")


def split_url_secret(url: str) -> tuple[str, str | None]:
    """``(url without its user-info, the secret it carried or None)``: ``http://:S@host`` and
    ``http://user:S@host`` carry S, ``http://S@host`` carries S. requests would otherwise send the user-info
    as HTTP Basic auth, replacing the Bearer header (every call 401)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")  # the last '@', as requests and urllib3 read it
    user, sep, password = userinfo.partition(":")
    value = unquote(password if sep and password else user)
    return parts._replace(netloc=hostport).geturl(), value or None


def registry_secret(url: str) -> tuple[str, Secret]:
    """The registry URL to call and the secret to send: the one in the URL's user-info, or
    ``$MODELS_SERVICE_INTERNAL_SECRET``. Both given and different: PublishInputError (exit 2), since either
    could be the stale one; neither: PublishConfigError (exit 3)."""
    clean, from_url = split_url_secret(url)
    from_env = os.environ.get(ENV_SECRET, "").strip()
    if from_url and from_env and from_url != from_env:
        raise PublishInputError(
            f"--registry-url {redact_url(url)} carries a secret and {ENV_SECRET} holds another; pass one "
            f"(accepted: the secret in {ENV_SECRET} and a URL without user-info, or the same secret in both)"
        )
    return clean, Secret(from_url) if from_url else secret_from_env()


def account_key(url: str, secret: Secret) -> str:
    """A short tag of the secret that told which account a registration was made with, for the publish
    state's keys: two URLs that differ only in their (masked) credentials must not share resume state.
    Slow (PBKDF2) and truncated, so the state file gives a guesser nothing to test quickly."""
    salt = f"weightpack-publish-state|{urlsplit(url).hostname}".encode()
    return hashlib.pbkdf2_hmac("sha256", secret.reveal().encode(), salt, 100_000)[:6].hex()


def secret_from_env() -> Secret:
    """The secret from ``$MODELS_SERVICE_INTERNAL_SECRET``; PublishConfigError (exit 3) when unset."""
    value = os.environ.get(ENV_SECRET, "").strip()
    if not value:
        raise PublishConfigError(
            f"the models service needs a secret: set the environment variable {ENV_SECRET} "
            "(it is sent only in the Authorization header and never printed)"
        )
    return Secret(value)
