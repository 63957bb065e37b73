"""How a failed package is recorded and what the run exits with.

One package failing (an export, a load) does not stop the run; it is recorded in the report with the exit
code its error class maps to (``exit_code`` on every weightpack error: 1 a check failed, 3 environment) and
a short reason for the summary tables. The run's exit code is then a pure function of the report.
"""

from __future__ import annotations

from typing import Any

from backends.errors import MissingExtraError
from bench.attempts import short
from bench.report import Report
from packager.errors import EXIT_CHECK_FAILED, EXIT_OK


def record(
    report: Report,
    stage: str,
    variant: str,
    backend: str,
    device: str | None,
    exc: BaseException,
    exit_code: int | None = None,
) -> None:
    """Add ``exc`` to ``report.failures`` with its message, type, exit code (its class's unless given)
    and a short reason."""
    message = str(exc) if stage == "export" else f"{type(exc).__name__}: {exc}"
    report.fail(
        stage,
        variant,
        backend,
        device,
        message,
        reason=reason(stage, exc),
        error=type(exc).__name__,
        exit_code=int(exit_code if exit_code is not None else getattr(exc, "exit_code", EXIT_CHECK_FAILED)),
    )


def reason(stage: str, exc: BaseException) -> str:
    """A few words a summary table can show: the missing extra by name, else the stage and message."""
    if isinstance(exc, MissingExtraError):
        return f"missing extra: pip install 'weightpack[{exc.extra}]' ({exc.module})"
    return short(f"{stage} failed: {exc}")


def exit_code(report: dict[str, Any]) -> int:
    """0 when the run passed; otherwise the highest code among the recorded failures (3, an environment
    problem, wins over 1: it must be fixed before every check can run), and 1 when only checks failed."""
    if report["passed"]:
        return EXIT_OK
    codes = [int(f.get("exit_code", EXIT_CHECK_FAILED)) for f in report.get("failures", [])]
    return max([EXIT_CHECK_FAILED, *codes])
