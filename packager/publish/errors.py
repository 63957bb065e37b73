"""Errors of the publish step; exit codes follow packager.errors."""

from __future__ import annotations

from packager.errors import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, WeightpackError


class PublishError(WeightpackError):
    """Uploading or registering failed; the message says what was left in which state and how to resume."""

    exit_code = EXIT_CHECK_FAILED


class PublishConfigError(WeightpackError):
    """The environment lacks something publishing needs (the service secret, a registry URL)."""

    exit_code = EXIT_ENVIRONMENT
