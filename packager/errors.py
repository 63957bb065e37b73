"""Typed errors. Each carries the exit code the CLI returns and a message that says what to do.

Exit codes (README, docs/cli.md): 0 all passed, 1 a check failed, 2 bad input (recipe, flag, source,
archive rule), 3 an environment problem (a missing optional extra, no CUDA where CUDA was asked for, a full
disk or file-size limit, a network that keeps failing), 130 interrupted, 143 terminated (SIGTERM).
"""

from __future__ import annotations

import errno

from backends.errors import (  # re-exported: one place to import every error from
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_ENVIRONMENT,
    BackendError,
    BrokenInstallError,
    DeviceUnavailableError,
    ExportError,
    FieldError,
    InvalidDeviceError,
    MissingExtraError,
    ModelLoadError,
    OptionError,
    WeightpackError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CHECK_FAILED",
    "EXIT_ENVIRONMENT",
    "EXIT_OK",
    "ArchiveError",
    "BackendError",
    "BrokenInstallError",
    "CheckFailedError",
    "DeviceUnavailableError",
    "ExportError",
    "FieldError",
    "GatedRepoAccessError",
    "InvalidDeviceError",
    "MissingExtraError",
    "ModelLoadError",
    "NetworkError",
    "OptionError",
    "RecipeError",
    "SourceError",
    "SourceNotInstalledError",
    "UnsafeArchiveError",
    "UsageError",
    "WeightpackError",
    "WriteError",
]

EXIT_OK = 0


class RecipeError(FieldError):
    """A recipe file is malformed; the message names the file, the field and what would be accepted."""

    def __init__(self, file: object, field: str, problem: str, accepted: str | None = None) -> None:
        self.file = str(file)
        super().__init__(field, problem, accepted, where=self.file)


class UsageError(WeightpackError):
    """A command-line argument is wrong."""


class SourceError(WeightpackError):
    """Upstream weights could not be fetched."""


class SourceNotInstalledError(SourceError):
    """A ``pkg://`` source's Python package is not installed here: an environment problem (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class GatedRepoAccessError(SourceError):
    """The Hub repo is gated or private and this user has no access yet."""


class ArchiveError(WeightpackError):
    """A package tree or zip breaks a layout rule (flat, no reserved names, no escapes, no links)."""


class UnsafeArchiveError(ArchiveError):
    """A zip would write outside its target, through a link, or expand past the size limits."""


class WriteError(WeightpackError):
    """The file system refused a write (full disk, file-size limit, quota): an environment problem."""

    exit_code = EXIT_ENVIRONMENT

    @classmethod
    def of(cls, exc: OSError, out_dir: object) -> WriteError:
        """The OSError that stopped a run writing into ``out_dir``, said plainly (no traceback)."""
        file = f" ({exc.filename})" if exc.filename else ""
        return cls(
            f"{out_dir}: a write failed: {exc.strerror or exc} (errno {exc.errno}){file}; nothing "
            "half-written was kept: free space (or raise the file-size limit) and re-run, finished zips "
            "are reused"
        )


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
"""A full disk, a file-size limit (``ulimit -f``), a quota: the machine, not the input or the package."""


def disk_cause(exc: BaseException) -> OSError | None:
    """The OSError of :data:`DISK_ERRNOS` somewhere in ``exc``'s chain of causes, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def as_environment_error(exc: WeightpackError) -> WeightpackError:
    """``exc`` as a :class:`WriteError` (exit 3) when a full disk or a file-size limit caused it (an
    exporter wraps the OSError in its ExportError, which would otherwise read as a failed check)."""
    cause = disk_cause(exc)
    if cause is None or isinstance(exc, WriteError):
        return exc
    return WriteError(
        f"{exc} ({cause.strerror or cause}, errno {cause.errno}): nothing half-written was kept; free space "
        "(or raise the file-size limit) and re-run, finished zips are reused"
    )


class NetworkError(SourceError):
    """A download that kept failing (connection errors, timeouts, busy or failing servers) after every
    retry, or a store this machine has no credentials for: the environment, not the source named (exit 3).
    A source that is not there (404, a missing repo or object) stays bad input (exit 2)."""

    exit_code = EXIT_ENVIRONMENT


class CheckFailedError(WeightpackError):
    """A verification check (parity, load, integrity) failed; nothing is published."""

    exit_code = EXIT_CHECK_FAILED
