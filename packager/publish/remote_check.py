"""How ``pack verify-remote`` reports a package's check (its :class:`~packager.package_check.PackageCheck`,
the check ``pack`` ran on it) and the consumer's: one line per compared output and per task check."""

from __future__ import annotations

from typing import Any


def check_lines(checked: Any, prefix: str = "") -> list[str]:
    """One line per compared output and per task check."""
    lines = [
        f"{prefix}{p.output}: {'ok' if p.passed else 'MISMATCH'} max_abs={p.max_abs} "
        f"(atol={p.atol}, rtol={p.rtol})" + ("" if p.passed else f" {p.reason}")
        for p in checked.parity
    ]
    for c in checked.task_checks:
        bound = "at least" if c.rule == ">=" else "at most"
        verdict = "ok" if c.passed else "FAILED"
        lines.append(
            f"{prefix}task {c.check} on {c.output}: {verdict} {c.value:.6g} ({bound} {c.threshold:g})"
        )
    return lines
