"""Latency measurement that keeps every raw sample.

Warm-up runs until both a count and a duration are reached (JIT, allocator growth and caches settle);
steady state runs until both ``min_iters`` and ``min_time_s`` are met (capped by ``max_time_s``). Each
sample is host wall time of one call plus the model's ``synchronize()``, so queued device work is counted.
Statistics come from the pooled samples, never from per-window summaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STABLE_COV = 0.025  # trtexec's threshold: above 2.5 % coefficient of variation the run is "unstable"


@dataclass(frozen=True)
class LatencyConfig:
    warmup_iters: int = 10
    warmup_s: float = 0.2
    min_iters: int = 30
    min_time_s: float = 0.5
    max_time_s: float = 10.0


@dataclass
class LatencyResult:
    """Raw samples in milliseconds plus the summary computed from them."""

    samples_ms: list[float]
    warmup_iters: int
    total_s: float
    stats: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = summarize(self.samples_ms)


def summarize(samples_ms: Sequence[float], batch_size: int = 1) -> dict[str, float]:
    """p50/p90/p95/p99, mean, std, min, max, CoV and throughput of pooled samples."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    p = np.percentile(arr, [50, 90, 95, 99])
    q1, q3 = np.percentile(arr, [25, 75])
    cov = std / mean if mean > 0 else 0.0
    return {
        "p50_ms": float(p[0]),
        "p90_ms": float(p[1]),
        "p95_ms": float(p[2]),
        "p99_ms": float(p[3]),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "iqr_ms": float(q3 - q1),
        "cov": cov,
        "iterations": int(arr.size),
        "throughput_per_s": (1000.0 * batch_size / mean) if mean > 0 else math.inf,
        "stable": bool(cov <= STABLE_COV),
    }


def measure(
    fn: Callable[[Any], Any],
    input_sets: Sequence[Any],
    config: LatencyConfig,
    synchronize: Callable[[], None] | None = None,
) -> LatencyResult:
    """Time ``fn(inputs)``, rotating through ``input_sets``; ``synchronize`` runs inside each sample."""
    if not input_sets:
        raise ValueError("measure() needs at least one input set")
    sync = synchronize or _noop
    clock = time.perf_counter_ns
    n_sets = len(input_sets)
    warm = 0
    warm_deadline = clock() + int(config.warmup_s * 1e9)
    while warm < config.warmup_iters or clock() < warm_deadline:
        fn(input_sets[warm % n_sets])
        sync()
        warm += 1
    samples: list[int] = []
    start = clock()
    min_end = start + int(config.min_time_s * 1e9)
    hard_end = start + int(config.max_time_s * 1e9)
    i = 0
    while True:
        inputs = input_sets[i % n_sets]
        t0 = clock()
        fn(inputs)
        sync()
        t1 = clock()
        samples.append(t1 - t0)
        i += 1
        if (i >= config.min_iters and t1 >= min_end) or t1 >= hard_end:
            break
    total = (clock() - start) / 1e9
    return LatencyResult(samples_ms=[s / 1e6 for s in samples], warmup_iters=warm, total_s=total)


def _noop() -> None:
    return None


def harness_overhead_ns(iterations: int = 20000) -> float:
    """Median per-iteration cost of the timing loop itself, measured on a no-op callable."""
    result = measure(
        lambda _: None,
        [None],
        LatencyConfig(warmup_iters=100, warmup_s=0.0, min_iters=iterations, min_time_s=0.0, max_time_s=5.0),
    )
    return float(np.median(result.samples_ms) * 1e6)
