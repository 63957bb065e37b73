"""Many rows at once: the false-alarm rate of a whole nightly, not of one row.

A nightly tests every latency row of every family (medians, and tails where they can be estimated). At
2.5 % per row, 20 rows give about a 40 % chance that some unchanged row is flagged on a given night. The
regression tests of one comparison are therefore decided together:

* ``holm`` (default) — Holm's step-down rule: the family-wise error rate (the chance that a nightly with no
  real regression flags anything) is at most ``level``, whatever the dependence between rows;
* ``bh`` — Benjamini-Hochberg: the expected share of false ones among the flagged rows is at most
  ``level`` (valid for independent or positively dependent rows); more flags, weaker guarantee.

Each returns adjusted p-values (a row is flagged when its adjusted p is at most ``level``). A lone
regression among ``m`` tests must clear ``level / m`` under either rule: :func:`lone_level`, which is what
the "smallest detectable slowdown" of a row is computed at.
"""

from __future__ import annotations

from collections.abc import Sequence

RULES = {
    "holm": "Holm step-down (family-wise error rate)",
    "bh": "Benjamini-Hochberg (false discovery rate)",
}


def holm(p: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: ``max over j <= i of (m - j + 1) p_(j)``, capped at 1, in input order."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """BH-adjusted p-values: ``min over j >= i of m p_(j) / j``, capped at 1, in input order."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i], reverse=True)
    adjusted = [1.0] * m
    running = 1.0
    for back, i in enumerate(order):
        rank = m - back
        running = min(running, m * p[i] / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def adjust(p: Sequence[float], rule: str) -> list[float]:
    """Adjusted p-values under ``rule`` (``holm`` or ``bh``)."""
    if rule not in RULES:
        raise ValueError(f"unknown multiplicity rule {rule!r}; accepted: {', '.join(RULES)}")
    return holm(p) if rule == "holm" else benjamini_hochberg(p)


def lone_level(level: float, m: int) -> float:
    """The one-sided level a single real regression among ``m`` tests must clear (both rules)."""
    return level / max(m, 1)
