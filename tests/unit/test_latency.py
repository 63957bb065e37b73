"""Latency statistics on known samples, and the stopping rules of the harness."""

from __future__ import annotations

import numpy as np
import pytest

from bench.latency import LatencyConfig, measure, summarize


def test_percentiles_from_pooled_samples() -> None:
    samples = list(np.arange(1, 101, dtype=float))  # 1..100 ms
    s = summarize(samples, batch_size=4)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["std_ms"] == pytest.approx(np.std(samples, ddof=1))
    assert s["cov"] == pytest.approx(s["std_ms"] / 50.5)
    assert s["throughput_per_s"] == pytest.approx(4 * 1000 / 50.5)
    assert s["iterations"] == 100 and not s["stable"]


def test_constant_samples_are_stable() -> None:
    s = summarize([2.0] * 10)
    assert s["std_ms"] == 0.0 and s["cov"] == 0.0 and s["stable"]


def test_empty_samples_raise() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_measure_meets_min_iters_and_rotates_inputs() -> None:
    seen: list[int] = []
    result = measure(
        seen.append,
        [0, 1, 2],
        LatencyConfig(warmup_iters=5, warmup_s=0.0, min_iters=30, min_time_s=0.0, max_time_s=5.0),
    )
    assert len(result.samples_ms) == 30
    assert result.warmup_iters == 5
    timed = seen[5:]
    assert timed[:6] == [0, 1, 2, 0, 1, 2]


def test_measure_meets_min_time_and_calls_synchronize() -> None:
    syncs = []
    result = measure(
        lambda _: None,
        [None],
        LatencyConfig(warmup_iters=0, warmup_s=0.0, min_iters=1, min_time_s=0.05, max_time_s=5.0),
        synchronize=lambda: syncs.append(1),
    )
    assert result.total_s >= 0.05
    assert len(syncs) == len(result.samples_ms)
