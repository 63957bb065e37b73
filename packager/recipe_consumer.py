"""The recipe fields of issue 20, parsed beside :mod:`packager.recipe_parser`:

* ``[parity.task]``: the one task check a recipe states instead of tables of output names
  (``check = "detection"``, ``output = "result"``, thresholds of :data:`bench.tasks.CHECK_DEFAULTS`);
* ``[consumer]``: whether inference-models can load the family's packages. A recipe whose packages no
  consumer class loads says so, with why (``loads = false``, ``reason = "..."``); every output of ``pack``
  and ``pack verify-remote`` then says "inference-models cannot load this package" instead of PASSED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.report import CANNOT_LOAD
from bench.tasks import CHECK_DEFAULTS, TaskCheckSpec


@dataclass(frozen=True)
class ConsumerRecipe:
    """``[consumer]``: ``loads`` is None when the recipe does not say."""

    loads: bool | None = None
    reason: str = ""

    @property
    def refused(self) -> bool:
        """The recipe declares that inference-models cannot load its packages."""
        return self.loads is False

    def note(self) -> str:
        """``inference-models cannot load this package: <reason>`` (empty unless declared refused)."""
        return f"{CANNOT_LOAD}: {self.reason}" if self.refused else ""


def task_check(parser: Any, table: dict[str, Any]) -> TaskCheckSpec:
    """``[parity.task]`` -> :class:`TaskCheckSpec`, every key checked against what the check accepts."""
    where = "parity.task"
    kind = parser.choice(parser.get(table, "check", where, str), f"{where}.check", list(CHECK_DEFAULTS))
    thresholds = CHECK_DEFAULTS[kind]
    parser.unknown_keys(table, where, {"check", "output", *thresholds})
    output = parser.get(table, "output", where, str, "result")
    if not output or output.startswith(".") or output.endswith("."):
        raise parser.fail(f"{where}.output", f"{output!r} is not an output name", "e.g. 'result'")
    given = {}
    for key in thresholds:
        if key in table:
            value = parser.get(table, key, where, float)
            if not math.isfinite(value) or value < 0:
                raise parser.fail(f"{where}.{key}", f"{value} is not a threshold", "a finite number >= 0")
            given[key] = value
    return TaskCheckSpec(kind, output, given)


def consumer(parser: Any, table: dict[str, Any]) -> ConsumerRecipe:
    """``[consumer]``: ``loads = false`` needs a ``reason`` (what a user reads instead of PASSED)."""
    parser.unknown_keys(table, "consumer", {"loads", "reason"})
    loads = parser.get(table, "loads", "consumer", bool, None)
    reason = parser.get(table, "reason", "consumer", str, "").strip()
    if loads is False and not reason:
        raise parser.fail(
            "consumer.reason", "is required with loads = false", "why inference-models cannot load it"
        )
    return ConsumerRecipe(loads, reason)
