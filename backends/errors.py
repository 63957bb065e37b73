"""Errors raised by backends. ``backends`` depends on nothing else in weightpack, so they live here;
``packager.errors`` re-exports them. ``exit_code`` is what the ``pack`` CLI returns for each."""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error a backend raises on purpose."""

    exit_code = 1


class ExportError(BackendError):
    """A backend could not export the upstream model."""


class ModelLoadError(BackendError):
    """A package could not be loaded through its model class (missing file, wrong format, wrong GPU)."""


class MissingExtraError(BackendError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    exit_code = 3

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{what} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'weightpack[{extra}]'"
        )


class DeviceUnavailableError(BackendError):
    """A device was asked for that this machine does not have; never silently replaced by the CPU."""

    exit_code = 3
