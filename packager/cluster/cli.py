"""``pack``'s cluster flags: ``--ray [ADDRESS]``, ``--targets``, ``--ray-timeout``."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from backends.options import target_problem
from packager.errors import UsageError

DEFAULT_TIMEOUT_S = 600.0


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a positive number of seconds")
    return seconds


def _targets(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    problem = target_problem(names) if names else "no target given"
    if problem:
        raise argparse.ArgumentTypeError(
            f"{problem} (accepted: comma-separated names of letters, digits, _ . -, e.g. h100,l4)"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (optional extra 'ray'; see docs/cluster.md)")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="build and verify each (variant, backend, target) as a task on the Ray cluster at ADDRESS "
        "(default: $RAY_ADDRESS, else the cluster started on this machine); results come back here",
    )
    group.add_argument(
        "--targets",
        type=_targets,
        metavar="T1,T2",
        help="with --ray: build and verify every package on a node of each target (Ray resource "
        "target:NAME, or accelerator_type:NAME); default: the recipe's [backends.NAME] targets",
    )
    group.add_argument(
        "--ray-timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="with --ray: fail a package whose target no live node has offered for this long (default 600)",
    )


def address(flag: str) -> str:
    """``--ray`` alone means ``$RAY_ADDRESS``, else Ray's ``auto`` (the cluster ``ray start`` began here)."""
    return flag or os.environ.get("RAY_ADDRESS") or "auto"


def executor(args: argparse.Namespace) -> Any:
    """The cluster executor the flags ask for, connected (None without ``--ray``)."""
    if args.ray is None:
        if args.targets:
            raise UsageError("--targets: targets are where --ray builds; pass --ray [ADDRESS] with it")
        return None
    from packager.cluster.driver import RayExecutor

    runner = RayExecutor(address(args.ray), args.targets, args.devices, args.ray_timeout)
    runner.connect()
    return runner
