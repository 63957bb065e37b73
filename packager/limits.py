"""The archive validator's limits as command-line flags (``pack`` and ``pack verify-remote``)."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace

from packager.archive import DEFAULT_LIMITS, Limits

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:I?B)?", re.I)


def parse_size(text: str) -> int:
    """``123``, ``500M``, ``2T``, ``64GiB`` -> bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (accepted: bytes, or 500M, 64G, 2T)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DEFAULT_LIMITS
    group = parser.add_argument_group("limits on packages read back (zips reused, verified, downloaded)")
    group.add_argument(
        "--max-extract-bytes",
        type=parse_size,
        default=defaults.max_total_bytes,
        metavar="SIZE",
        help=f"most bytes a package may expand to (default {defaults.max_total_bytes // 2**40}T)",
    )
    group.add_argument(
        "--max-members",
        type=_count,
        default=defaults.max_members,
        metavar="N",
        help=f"most files a package may hold (default {defaults.max_members})",
    )


def limits_from(args: argparse.Namespace) -> Limits:
    """The run's limits: the defaults with the flags :func:`add_arguments` added (the one place a run's
    ``Limits`` is made; it then travels in :class:`packager.settings.RunSettings`)."""
    return replace(
        DEFAULT_LIMITS,
        max_total_bytes=getattr(args, "max_extract_bytes", DEFAULT_LIMITS.max_total_bytes),
        max_members=getattr(args, "max_members", DEFAULT_LIMITS.max_members),
    )
