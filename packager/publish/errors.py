"""Errors of the publish step; exit codes follow packager.errors."""

from __future__ import annotations

from packager.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, WeightpackError


class PublishError(WeightpackError):
    """Uploading or registering failed; the message says what was left in which state and how to resume."""

    exit_code = EXIT_CHECK_FAILED


class PublishNetworkError(PublishError):
    """The models service or a store could not be reached, or kept failing, after every retry: the
    network, not the package (exit 3). Resuming later picks up where it stopped."""

    exit_code = EXIT_ENVIRONMENT


class RegistryAnswerError(PublishError):
    """The registry answered with something that is not the documented shape (not JSON, a list where an
    object belongs, nested too deep): refused as hostile data, like a package breaking the rules (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class PublishInputError(PublishError):
    """A publish setting is malformed (bad input, exit 2), found before anything is packed or sent."""

    exit_code = EXIT_BAD_INPUT


class PublishConfigError(WeightpackError):
    """The environment lacks something publishing needs (the service secret, a registry URL)."""

    exit_code = EXIT_ENVIRONMENT
