"""What ``pack`` shows when a run ends: the ``--json`` summary and the terminal table, both listing every
package attempted (:func:`bench.attempts.attempts`), a failed one with its reason."""

from __future__ import annotations

from pathlib import Path


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
