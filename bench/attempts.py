"""Every package a run attempted, passed or failed, with a short reason: what the terminal summary and
``report.md`` list, so a package whose export failed is never missing from either.

A pure function of ``report.json`` (v1 and v2): packages come from ``packages`` (built), ``failures``
(export or load failed), ``parity`` and ``task_checks``; nothing is recorded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REASON_CHARS = 72
EVERY_BACKEND = "*"
"""The backend of a failure that stopped a recipe, variant or run before any one package."""


@dataclass(frozen=True)
class Attempt:
    """One (variant, backend, device) the run tried; ``device`` is None when it failed before any device
    (an export), ``backend`` is :data:`EVERY_BACKEND` when the recipe or variant failed before any package
    (``variant`` is ``*`` or ``-`` when the whole recipe or run did). ``reason`` is empty when it passed."""

    variant: str
    backend: str
    device: str | None
    passed: bool
    reason: str


def short(text: str, limit: int = REASON_CHARS) -> str:
    """The first line of ``text``, cut to ``limit`` characters (with an ellipsis when cut)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def failure_reason(failure: dict[str, Any]) -> str:
    """The failure's recorded ``reason`` (reports from this version), else its stage and message."""
    if failure.get("reason"):
        return str(failure["reason"])
    return short(f"{failure['stage']} failed: {failure['message']}")


def attempts(report: dict[str, Any]) -> list[Attempt]:
    """One entry per (variant, backend, device) attempted, in the order the run met them."""
    order: list[tuple[str, str, str | None]] = []
    reasons: dict[tuple[str, str, str | None], list[str]] = {}

    def note(key: tuple[str, str, str | None], reason: str | None) -> None:
        if key not in reasons:
            order.append(key)
            reasons[key] = []
        if reason and reason not in reasons[key]:
            reasons[key].append(reason)

    for pkg in report.get("packages", []):
        built = [p for p in report.get("parity", []) if (p["variant"], p["backend"]) == _pair(pkg)]
        if not built and not _failures_of(report, *_pair(pkg)):
            note((*_pair(pkg), None), None)
    for row in report.get("parity", []):
        key = (row["variant"], row["backend"], row["device"])
        note(
            key, None if row["passed"] else short(f"parity {row['output']}: {row.get('reason') or 'failed'}")
        )
    for check in report.get("task_checks", []):
        key = (check["variant"], check["backend"], check["device"])
        failed = f"task check {check['check']} {check['value']:.4g} vs {check['threshold']:.4g}"
        note(key, None if check["passed"] else failed)
    for failure in report.get("failures", []):
        # a failure of the whole recipe, variant or run (bad input, a full disk) concerns every backend
        backend = failure.get("backend") or EVERY_BACKEND
        note((failure["variant"], backend, failure.get("device")), failure_reason(failure))
    return [
        Attempt(v, b, d, passed=not reasons[(v, b, d)], reason="; ".join(reasons[(v, b, d)]))
        for v, b, d in order
    ]


def _pair(pkg: dict[str, Any]) -> tuple[str, str]:
    return pkg["variant"], pkg["backend"]


def _failures_of(report: dict[str, Any], variant: str, backend: str) -> list[dict[str, Any]]:
    return [f for f in report.get("failures", []) if (f["variant"], f.get("backend")) == (variant, backend)]


def by_package(report: dict[str, Any]) -> list[Attempt]:
    """:func:`attempts` folded over devices: one entry per (variant, backend), failed if any device failed,
    reasons prefixed with their device."""
    folded: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in attempts(report):
        folded.setdefault((attempt.variant, attempt.backend), []).append(attempt)
    out = []
    for (variant, backend), items in folded.items():
        reasons = [f"{a.device}: {a.reason}" if a.device else a.reason for a in items if not a.passed]
        out.append(Attempt(variant, backend, None, passed=not reasons, reason="; ".join(reasons)))
    return out
