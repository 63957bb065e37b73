"""The models-service secret: read from the environment, sent only in an Authorization header.

:class:`Secret` never shows its value in ``str``/``repr``; :meth:`Secret.redact` removes it from any text
(an error body that echoes headers, an exception message) before that text is printed or raised: whole
values only, never fragments of words (see :mod:`packager.redact`).
"""

from __future__ import annotations

import os

from packager.redact import MASK, redact_text

from .errors import PublishConfigError

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


def secret_from_env() -> Secret:
    """The secret from ``$MODELS_SERVICE_INTERNAL_SECRET``; PublishConfigError (exit 3) when unset."""
    value = os.environ.get(ENV_SECRET, "").strip()
    if not value:
        raise PublishConfigError(
            f"the models service needs a secret: set the environment variable {ENV_SECRET} "
            "(it is sent only in the Authorization header and never printed)"
        )
    return Secret(value)
