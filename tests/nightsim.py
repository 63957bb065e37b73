"""Simulated nights for the tests of pack compare, calibrate and history: log-normal night and run effects
around each row's level, gamma noise inside a run, report.json-shaped runs (what pack runs writes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV = {"cpu": "Test CPU", "cpu_count": 2, "machine": "x86_64", "libraries": {"onnxruntime": "1.0"}}


@dataclass(frozen=True)
class Row:
    backend: str = "onnx"
    batch_size: int = 1
    ms: float = 10.0
    run_sd: float = 0.03  # run-to-run s.d. of the log median
    night_sd: float = 0.04  # night-to-night s.d. of the log median


MATRIX = tuple(
    Row(b, bs, ms * bs**0.7, run_sd, night_sd)
    for b, ms, run_sd, night_sd in (
        ("onnx", 8.0, 0.03, 0.04),
        ("torch", 15.0, 0.04, 0.05),
        ("torch-script", 14.0, 0.04, 0.03),
        ("hf", 16.0, 0.05, 0.06),
    )
    for bs in (1, 8)
)  # the demo family's shape: 4 packages x 2 batch sizes


def night(
    rng: np.random.Generator,
    rows: tuple[Row, ...] = MATRIX,
    k: int = 3,
    n: int = 30,
    slow: dict[tuple[str, int], float] | None = None,
    tail: dict[tuple[str, int], float] | None = None,
    name: str = "n",
    max_abs: float = 1e-7,
) -> list[dict]:
    """k runs of every row; ``slow`` multiplies a (backend, batch) row's level, ``tail`` multiplies one
    sample in 20 of it (a tail-only regression)."""
    effects = {r: rng.normal(0, r.night_sd) for r in rows}
    runs = []
    for j in range(k):
        latency = []
        for r in rows:
            level = (
                r.ms
                * np.exp(effects[r] + rng.normal(0, r.run_sd))
                * (slow or {}).get((r.backend, r.batch_size), 1.0)
            )
            samples = level * (0.9 + rng.gamma(4.0, 0.025, size=n))
            factor = (tail or {}).get((r.backend, r.batch_size))
            if factor:
                samples[::20] *= factor
            latency.append({"variant": "v", "backend": r.backend, "device": "cpu", "batch_size": r.batch_size,
                            "samples_ms": [round(float(s), 5) for s in samples]})  # fmt: skip
        parity = [{"variant": "v", "backend": b, "device": "cpu", "output": "y", "max_abs": max_abs,
                   "atol": 1e-5, "passed": True} for b in sorted({r.backend for r in rows})]  # fmt: skip
        runs.append({
            "family": "demo",
            "created_at": f"{name}-r{j}",
            "environment": ENV,
            "meta": {"run": {"round": j, "package": "p"}},
            "latency": latency,
            "parity": parity,
        })  # fmt: skip
    return runs


def write_night(folder: Path, runs: list[dict]) -> Path:
    for i, run in enumerate(runs):
        path = folder / f"run-{i:02d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    return folder
