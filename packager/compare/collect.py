"""Collect runs: each one a fresh process (:mod:`packager.compare.measure`), interleaved across packages.

Round ``r`` measures every target once before round ``r + 1`` starts, and the order inside a round is
rotated by one each round, so a slow minute on a shared machine lands on several packages (and on both
sides of an A/B comparison) instead of on one. For A/B targets the rotation gives AB, BA, AB, ...:
adjacent pairs with the order counterbalanced, so a linear drift of the machine cancels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packager.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, CheckFailedError

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    """One package on one device, measured from a pack output folder; ``label`` names its side/role."""

    pack_out: Path
    variant: str
    backend: str
    device: str
    label: str = ""
    plant: str = ""  # bench.planted.Plant spec, e.g. compute:0.2@8 (calibration only)
    drift: float = 0.0
    latency: bool = True

    @property
    def name(self) -> str:
        stem = f"{self.variant}-{self.backend}-{self.device.replace(':', '')}"
        return f"{self.label}/{stem}" if self.label else stem


@dataclass(frozen=True)
class Settings:
    """Latency settings passed to every run (``None``: the recipe's)."""

    batch_sizes: tuple[int, ...] | None = None
    min_iters: int | None = None
    min_time_s: float | None = None
    threads: int | None = None
    target_ci: float | None = None
    timeout_s: float = 900.0
    extra_env: dict[str, str] = field(default_factory=dict)


def schedule(targets: Sequence[Target], k: int) -> list[tuple[int, Target]]:
    """``(round, target)`` in execution order: k rounds, each target once per round, order rotated."""
    order = []
    for r in range(k):
        shift = r % len(targets) if targets else 0
        for target in [*targets[shift:], *targets[:shift]]:
            order.append((r, target))
    return order


def targets_of(
    pack_out: Path, report: dict, variants=None, backends=None, devices=None, label=""
) -> list[Target]:
    """Every (variant, backend, device) of a pack report that has a latency or parity row, filtered."""
    seen = []
    for row in [*report.get("latency", []), *report.get("parity", [])]:
        key = (row["variant"], row["backend"], row["device"])
        if key in seen:
            continue
        if (variants and key[0] not in variants) or (backends and key[1] not in backends):
            continue
        if devices and key[2] not in devices:
            continue
        seen.append(key)
    return [Target(Path(pack_out), v, b, d, label) for v, b, d in seen]


def command(target: Target, out: Path, settings: Settings, meta: dict) -> list[str]:
    cmd = [
        sys.executable, "-m", "packager.compare.measure", str(target.pack_out),
        "--variant", target.variant, "--backend", target.backend, "--device", target.device,
        "--out", str(out), "--meta", json.dumps(meta),
    ]  # fmt: skip
    if not target.latency:
        cmd.append("--no-latency")
    if settings.batch_sizes:
        cmd += ["--batch-sizes", ",".join(map(str, settings.batch_sizes))]
    if settings.min_iters is not None:
        cmd += ["--min-iters", str(settings.min_iters)]
    if settings.min_time_s is not None:
        cmd += ["--min-time-s", str(settings.min_time_s)]
    if settings.threads:
        cmd += ["--threads", str(settings.threads)]
    if settings.target_ci:
        cmd += ["--target-ci", str(settings.target_ci)]
    if target.plant:
        cmd += ["--plant", target.plant]
    if target.drift:
        cmd += ["--plant-drift", repr(target.drift)]
    return cmd


def run_one(target: Target, out: Path, settings: Settings, meta: dict) -> Path:
    """Measure ``target`` in a fresh Python process; the run file, or :class:`CheckFailedError`."""
    env = {**os.environ, **settings.extra_env}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        command(target, out, settings, meta), env=env, capture_output=True, text=True,
        timeout=settings.timeout_s, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.is_file():
        lines = [line for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
        error = CheckFailedError(
            f"run of {target.name} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"
        )
        if proc.returncode in (EXIT_BAD_INPUT, EXIT_ENVIRONMENT):
            error.exit_code = proc.returncode  # bad input / missing extra in the run: the same code here
        raise error
    return out


def schedule_pairs(pairs: Sequence[tuple[Target, Target]], k: int) -> list[tuple[int, Target]]:
    """A/B: k rounds; in each, every (a, b) pair back to back, as AB in even rounds and BA in odd ones."""
    order = []
    for r in range(k):
        shift = r % len(pairs) if pairs else 0
        for a, b in [*pairs[shift:], *pairs[:shift]]:
            order += [(r, a), (r, b)] if r % 2 == 0 else [(r, b), (r, a)]
    return order


def collect(
    targets: Sequence[Target],
    k: int,
    into: Path,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[Target, list[Path]]:
    """k interleaved runs of every target under ``into/<target name>/run-NN.json``."""
    return execute(schedule(targets, k), into, settings, progress)


def collect_pairs(
    pairs: Sequence[tuple[Target, Target]],
    k: int,
    into: Path,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[Target, list[Path]]:
    """k A/B pairs of runs per (a, b), see :func:`schedule_pairs`."""
    return execute(schedule_pairs(pairs, k), into, settings, progress)


def execute(
    plan: Sequence[tuple[int, Target]],
    into: Path,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[Target, list[Path]]:
    """Run ``plan`` one process at a time (never in parallel: runs would time each other)."""
    settings = settings or Settings()
    runs: dict[Target, list[Path]] = {}
    for position, (r, target) in enumerate(plan):
        out = Path(into) / target.name / f"run-{r:02d}.json"
        stem = target.name.rsplit("/", 1)[-1]
        meta = {
            "round": r,
            "position": position,
            "target": target.name,
            "package": stem,
            "label": target.label,
        }
        started = time.perf_counter()
        runs.setdefault(target, []).append(run_one(target, out, settings, meta))
        if progress:
            progress(
                f"[{position + 1}/{len(plan)}] {target.name} run {r} ({time.perf_counter() - started:.1f} s)"
            )
    return runs
