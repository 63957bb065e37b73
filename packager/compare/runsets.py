"""Run sets on disk: which files are runs, and a comparison of two sets that refuses unlike environments.

A run is one ``report.json``-shaped file from one process: a ``pack`` report, or a ``run-NN.json`` written
by :mod:`packager.compare.measure`. A path given to ``pack compare`` is a file (one run) or a folder: its
``run-*.json`` files at any depth, else its ``report.json``. Each path is one night; several baseline paths
form a window (the last N nights).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.regression import Comparison, Thresholds, compare_nights
from packager.errors import UsageError


class EnvironmentMismatchError(UsageError):
    """Two run sets were measured on different hardware or software stacks."""


def load_run(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read report {path}: {exc}") from exc
    if not isinstance(data, dict) or "latency" not in data:
        raise UsageError(f"{path} is not a weightpack report.json or run file (no 'latency' list)")
    data.setdefault("meta", {})
    data["meta"] = {**(data.get("meta") or {}), "source": str(path)}
    return data


def run_files(path: Path) -> list[Path]:
    """The run files a path stands for (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        runs = sorted(path.rglob("run-*.json"))
        if runs:
            return runs
        if (path / "report.json").is_file():
            return [path / "report.json"]
        raise UsageError(f"{path}: no run-*.json and no report.json inside")
    raise UsageError(f"{path}: no such file or folder")


def load_runs(paths: Sequence[Path]) -> list[dict]:
    return [load_run(f) for p in paths for f in run_files(p)]


def load_nights(paths: Sequence[Path]) -> list[list[dict]]:
    """One night per path (its runs), each run marked with ``meta.night`` = the path."""
    nights = []
    for path in paths:
        runs = load_runs([path])
        for run in runs:
            run["meta"]["night"] = str(path)
        nights.append(runs)
    return nights


def compare_sets(
    baseline: Sequence[dict] | Sequence[Sequence[dict]],
    current: Sequence[dict],
    t: Thresholds | None = None,
    allow_env_mismatch: bool = False,
    **only: bool,
) -> Comparison:
    """:func:`bench.regression.compare_nights` after refusing different families and (unless allowed)
    different environments. ``baseline``: a window of nights (lists of runs), or runs (one night)."""
    window = [list(n) for n in baseline] if baseline and isinstance(baseline[0], list) else [list(baseline)]
    families = {r.get("family") for r in [*(r for n in window for r in n), *current]}
    if len(families) > 1:
        raise UsageError(
            f"runs of different families cannot be compared: {', '.join(sorted(map(str, families)))}"
        )
    try:
        result = compare_nights(window, current, t, **only)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if result.environment_differences and not allow_env_mismatch:
        raise EnvironmentMismatchError(
            "the runs were measured in different environments ("
            + "; ".join(result.environment_differences)
            + "); compare against a baseline from the same machine/driver/runtimes, "
            "or pass --allow-env-mismatch"
        )
    return result
