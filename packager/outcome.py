"""What a ``pack`` run ends with: where a package's verification and failures enter the report, the exit
code the run maps to, and what it shows (the ``--json`` summary and the terminal table).

Steps return values and the pipeline assembles the report from them (Model Navigator style): the verify
step returns a :class:`~packager.verify.Verification` and :func:`record_verification` puts it in the
:class:`~bench.report.Report`. One package failing (an export, a load) does not stop the run; it is
recorded (:func:`record_failure`) with the exit code its error class maps to (``exit_code`` on every
weightpack error: 1 a check failed, 3 environment) and a short reason for the summary tables. The run's
exit code is then a pure function of the report (:func:`exit_code`). The summary lists every package
attempted (:func:`bench.attempts.attempts`), a failed one with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.errors import MissingExtraError
from bench.attempts import short
from bench.report import Report
from packager.build import PackageBuild
from packager.errors import EXIT_CHECK_FAILED, EXIT_OK
from packager.verify import Verification

# -- failures and the exit code ----------------------------------------------------------------------


def record_failure(
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


# -- a verification into the report -----------------------------------------------------------------


def record_verification(report: Report, build: PackageBuild, v: Verification, out_dir: Path) -> None:
    """Put one package's verification on one device into the report: where a verification enters it."""
    variant, backend = build.variant, build.backend
    if v.error is not None and v.stage == "parity":
        at = f" at input shape {v.shape}" if v.shape else ""
        message = f"variant '{variant}', backend {backend} on {v.device}{at}: {v.error}"
        report.fail("parity", variant, backend, v.device, message, exit_code=1)
    elif v.error is not None and v.stage == "latency":  # a package that cannot take a timed batch
        record_failure(report, "latency", variant, backend, v.device, v.error, exit_code=1)
    elif v.error is not None:
        record_failure(report, "load", variant, backend, v.device, v.error)
    if v.cold_start is None:
        return
    report.cold_start.append({"variant": variant, "backend": backend, "device": v.device, **v.cold_start})
    if v.golden is not None:
        report.goldens.append(
            {
                "variant": variant,
                "backend": backend,
                "device": v.device,
                "path": v.golden.relative_to(out_dir).as_posix(),
            }
        )
    for label, check in v.checks:
        for r in check.parity:
            report.add_parity(variant, backend, v.device, r, label)
        for c in check.task_checks:
            report.add_task_check(
                variant, backend, v.device, c.check, c.output, c.value, c.threshold, c.passed, label
            )
    for row in v.latency:
        report.add_latency(
            variant,
            backend,
            v.device,
            row.batch_size,
            row.result,
            row.memory,
            row.input_sets,
            input_shape=row.input_shape,
            inputs_digest=row.inputs_digest,
        )


# -- what pack shows ---------------------------------------------------------------------------------


def as_json(report: dict, out_dir: Path) -> dict:
    """The ``--json`` summary: verdict, where things are, one line per package built and one per package
    attempted (the terminal table's rows)."""
    from dataclasses import asdict

    from bench.attempts import attempts
    from bench.report import verdict

    return {
        "passed": report["passed"],
        "verdict": verdict(report),
        "consumer": report.get("consumer") or {},
        "family": report["family"],
        "out_dir": str(out_dir),
        "report": str(out_dir / "report.json"),
        "packages": [
            {k: p[k] for k in ("variant", "backend", "zip", "size", "md5", "sha256")}
            for p in report["packages"]
        ],
        "attempts": [asdict(a) for a in attempts(report)],
        "parity_failures": [p for p in report["parity"] if not p["passed"]],
        "failures": report["failures"],
    }


def print_table(report: dict, out_dir: Path) -> None:
    """One row per (variant, backend, device) attempted; a failed row points to a numbered note below the
    table that gives its reason on one unbroken line (a table cell would wrap it)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bench.attempts import attempts
    from packager.ui import plain

    console = Console(stderr=True)
    from bench.report import CANNOT_LOAD, consumer_refused, verdict

    table = Table(title=plain(f"{report['family']}: {verdict(report)}"))
    for col in ("variant", "backend", "device", "worst max_abs", "p50 ms (bs)", "passed"):
        table.add_column(col)
    notes: list[str] = []
    for attempt in attempts(report):
        key = (attempt.variant, attempt.backend, attempt.device)
        rows = [p for p in report["parity"] if (p["variant"], p["backend"], p["device"]) == key]
        lat = [r for r in report["latency"] if (r["variant"], r["backend"], r["device"]) == key]
        worst = max((r["max_abs"] or 0.0 for r in rows), default=None)
        if attempt.passed:
            verdict = Text("yes", style="green")
        else:
            where = "/".join(x for x in key if x)
            notes.append(f"({len(notes) + 1}) {where}: {attempt.reason}")
            verdict = Text.assemble(("NO", "red"), f" ({len(notes)})")
        table.add_row(
            plain(attempt.variant),
            plain(attempt.backend),
            plain(attempt.device or "-"),
            f"{worst:.2e}" if worst is not None else "-",
            ", ".join(f"{r['p50_ms']:.2f} ({_batch_at(r)})" for r in lat) or "-",
            verdict,
        )
    console.print(table)
    if consumer_refused(report):
        reason = report["consumer"]["reason"]
        console.print(plain(f"{CANNOT_LOAD}: {reason}"), style="bold yellow", soft_wrap=True, highlight=False)
    for note in notes:
        console.print(plain(note), soft_wrap=True, highlight=False)
    console.print(plain(f"report: {out_dir / 'report.md'}"), soft_wrap=True, highlight=False)


def _batch_at(row: dict) -> str:
    """``1``, or ``1, image 3x240x320`` for a row at one shape of a variant's shape set."""
    return f"{row['batch_size']}, {row['input_shape']}" if row.get("input_shape") else str(row["batch_size"])
