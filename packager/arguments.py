"""Argument types shared by every command line (``pack``, ``pack runs``/``ab``, compare's measure step,
the nightly plugin and fan-out): one comma-list parser, and batch sizes checked by the recipe's own rule.
Light to import (the pytest plugin loads it in every pytest run): the recipe is imported when used."""

from __future__ import annotations

import argparse

from backends.errors import FieldError


def comma_list(value: str) -> list[str]:
    """``tiny, small`` -> ``["tiny", "small"]``: items trimmed, empty ones dropped; a value without any
    item (``--variants ,``) is refused rather than read as "all"."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(
            f"{value!r} holds no item; expected a comma-separated list, e.g. a,b"
        )
    return items


def batch_sizes(value: str) -> tuple[int, ...]:
    """``1,8`` -> ``(1, 8)``, each checked by the rule of ``[bench] batch_sizes`` (positive, in range)."""
    from packager.recipes import BenchRecipe  # the recipe's loader is heavier than a pytest start wants

    try:
        sizes = [int(item) for item in comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of integers") from None
    try:
        return tuple(BenchRecipe.read("batch_sizes", sizes, "batch sizes"))
    except FieldError as exc:
        raise argparse.ArgumentTypeError(f"{exc.problem} (accepted: {exc.accepted})") from None


def thread_count(value: str) -> int:
    """``--threads N``, held to the rule of ``[bench] threads`` (a positive count, at most 4096): ``0`` is
    refused by ``pack``, ``pack runs``/``ab``, compare's measure step and the nightly alike, as it is in a
    recipe, never read as "the default"."""
    from packager.recipes import BenchRecipe

    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of threads") from None
    try:
        return int(BenchRecipe.read("threads", count, "--threads"))
    except FieldError as exc:
        raise argparse.ArgumentTypeError(f"{exc.problem} (accepted: {exc.accepted})") from None
