"""Errors raised on purpose anywhere in weightpack, rooted in :class:`WeightpackError`.

``backends`` depends on nothing else in weightpack, so the common base lives here; ``packager.errors``
re-exports it and adds the packager's own kinds. Every error carries ``exit_code``, what the ``pack`` CLI
returns for it (0 ok, 1 a check failed, 2 bad input, 3 environment), so a catch names one type.
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class WeightpackError(Exception):
    """Base of every error weightpack raises on purpose; ``exit_code`` is what ``pack`` exits with."""

    exit_code = EXIT_BAD_INPUT


class BackendError(WeightpackError):
    """Base of every error a backend raises on purpose (a failed export or load is a failed check)."""

    exit_code = EXIT_CHECK_FAILED


class ExportError(BackendError):
    """A backend could not export the upstream model."""


class ModelLoadError(BackendError):
    """A package could not be loaded through its model class (missing file, wrong format, wrong GPU)."""


class FieldError(WeightpackError):
    """Bad input in a named field: the message names the field, the problem and what is accepted."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, field: str, problem: str, accepted: str | None = None, where: str = "") -> None:
        self.field = field
        self.problem = problem
        self.accepted = accepted
        message = f"{where}: " if where else ""
        message += f"field '{field}': {problem}"
        if accepted:
            message += f" (accepted: {accepted})"
        super().__init__(message)


class OptionError(FieldError, BackendError):
    """A backend option in a recipe is unknown or out of range: bad input.

    ``field`` is the dotted path inside the backend's table (``opset``, ``onnx.opset``); the recipe loader
    prefixes it with ``backends.NAME`` and the file name (``packager.errors.RecipeError``).
    """

    exit_code = EXIT_BAD_INPUT


class MissingExtraError(BackendError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{what} needs the Python module '{module}', which is not installed. "
            f"Install it with: pip install 'weightpack[{extra}]'"
        )


class ConsumerUnavailableError(BackendError):
    """The consumer library (inference-models) is needed and not installed; the message says how to get it."""

    exit_code = EXIT_ENVIRONMENT


class BrokenInstallError(BackendError):
    """The installed packages contradict each other (onnxruntime and onnxruntime-gpu both present, or CUDA
    asked of an onnxruntime without a CUDA provider); the message holds the exact command that fixes it."""

    exit_code = EXIT_ENVIRONMENT


class InvalidDeviceError(BackendError, ValueError):
    """A device string that is no device at all (``tpu``, ``cuda:x``): bad input, not a missing GPU."""

    exit_code = EXIT_BAD_INPUT


class DeviceUnavailableError(BackendError):
    """A device was asked for that this machine does not have; never silently replaced by the CPU."""

    exit_code = EXIT_ENVIRONMENT


class UserModelError(BackendError):
    """The user's own module, weights file or model file does not fit what the recipe says (a factory that
    builds no module, weights with other keys, a file that is not what its name says): bad input."""

    exit_code = EXIT_BAD_INPUT


class InputMismatchError(UserModelError):
    """The sample inputs do not fit the model (name, rank, shape, dtype): bad input, not a failed check.

    The message names the input and what was expected and received; the pipeline prefixes the variant and
    backend.
    """
