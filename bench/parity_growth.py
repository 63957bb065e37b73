"""Parity across nights: the deterministic rule of :mod:`bench.regression` (not a statistical test, so outside
its multiplicity rule). ``max_abs`` over ``parity_growth`` (10x) times the baseline's (the baseline counting
as at least ``parity_floor`` of atol) is a regression even inside tolerance, and so is a check that passed
in every baseline run and fails in a current one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def parity_key(row: dict) -> str:
    return f"{row['variant']}/{row['backend']}/{row['device']}/{row['output']}"


@dataclass
class ParityComparison:
    key: str
    baseline_max_abs: float | None
    current_max_abs: float | None
    atol: float | None
    growth: float | None
    passed: bool | None
    verdict: str  # regression | ok
    reasons: list[str] = field(default_factory=list)


def parity_rows(runs: Sequence[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        for row in run.get("parity", []):
            out.setdefault(parity_key(row), []).append(row)
    return out


def compare_parity(key: str, base: Sequence[dict], cur: Sequence[dict], t: Any) -> ParityComparison:
    """The largest error of the current runs against the largest of the baseline runs (deterministic)."""
    reasons = []
    b, c = _worst(base), _worst(cur)
    atol = next((r.get("atol") for r in cur if r.get("atol") is not None), None)
    passed = all(bool(r.get("passed")) for r in cur)
    failed = next((r for r in cur if not r.get("passed")), None)
    if all(r.get("passed") for r in base) and failed is not None:
        reasons.append(f"failed now: {failed.get('reason')}")
    growth = None
    if b is not None and c is not None:
        floor = max(b, (atol or 0.0) * t.parity_floor, 1e-12)
        growth = c / floor
        if not math.isfinite(c) or growth > t.parity_growth:
            reasons.append(
                f"max_abs {b:.3g} -> {c:.3g} ({growth:.1f}x, limit {t.parity_growth:g}x)"
                + (" while still inside tolerance" if passed else "")
            )
    return ParityComparison(
        key=key,
        baseline_max_abs=b,
        current_max_abs=c,
        atol=atol,
        growth=growth,
        passed=passed,
        verdict="regression" if reasons else "ok",
        reasons=reasons,
    )


def _worst(rows: Sequence[dict]) -> float | None:
    values = [r["max_abs"] for r in rows if r.get("max_abs") is not None]
    if not values:
        return None
    return max(values, key=lambda v: v if math.isfinite(v) else math.inf)
