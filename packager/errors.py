"""Typed errors. Each carries the exit code the CLI returns and a message that says what to do.

Exit codes (documented in the README): 0 all passed, 1 a check failed, 2 bad input (recipe, flag, source,
archive rule), 3 an environment problem (a missing optional extra, no CUDA where CUDA was asked for).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class WeightpackError(Exception):
    """Base of every error weightpack raises on purpose."""

    exit_code = EXIT_BAD_INPUT


class RecipeError(WeightpackError):
    """A recipe file is malformed; the message names the file, the field and what would be accepted."""

    def __init__(self, file: object, field: str, problem: str, accepted: str | None = None) -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        self.accepted = accepted
        message = f"{self.file}: field '{field}': {problem}"
        if accepted:
            message += f" (accepted: {accepted})"
        super().__init__(message)


class UsageError(WeightpackError):
    """A command-line argument is wrong."""


class SourceError(WeightpackError):
    """Upstream weights could not be fetched."""


class GatedRepoAccessError(SourceError):
    """The Hub repo is gated or private and this user has no access yet."""


class ArchiveError(WeightpackError):
    """A package tree or zip breaks a layout rule (flat, no reserved names, no escapes, no links)."""


class UnsafeArchiveError(ArchiveError):
    """A zip would write outside its target, through a link, or expand past the size limits."""


class ExportError(WeightpackError):
    """A backend could not export the upstream model."""

    exit_code = EXIT_CHECK_FAILED


class ModelLoadError(WeightpackError):
    """A package could not be loaded through its model class."""

    exit_code = EXIT_CHECK_FAILED


class MissingExtraError(WeightpackError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'weightpack[{extra}]'"
        )


class DeviceUnavailableError(WeightpackError):
    """A device was requested that this machine does not have."""

    exit_code = EXIT_ENVIRONMENT


class CheckFailedError(WeightpackError):
    """A verification check (parity, load, integrity) failed; nothing is published."""

    exit_code = EXIT_CHECK_FAILED
