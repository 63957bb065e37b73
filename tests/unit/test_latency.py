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
    with pytest.raises(ValueError, match="no latency samples to summarize"):
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


# --- v2 additions: every statistic on known sets, device-timer path, overhead, input checks ----------

from bench.latency import (  # noqa: E402
    STABLE_COV,
    device_synchronize,
    harness_overhead_ns,
    measure_model,
    median_ci,
    model_stream,
    validate_input_sets,
)


def test_every_statistic_on_a_small_known_set() -> None:
    samples = [4.0, 1.0, 3.0, 2.0, 10.0]  # unsorted on purpose
    s = summarize(samples, batch_size=2)
    assert s["p50_ms"] == 3.0
    assert s["p90_ms"] == pytest.approx(7.6)  # linear interpolation between 4 and 10
    assert s["p95_ms"] == pytest.approx(8.8)
    assert s["p99_ms"] == pytest.approx(9.76)
    assert s["min_ms"] == 1.0 and s["max_ms"] == 10.0
    assert s["iqr_ms"] == pytest.approx(2.0)  # q3 4 - q1 2
    assert s["mean_ms"] == pytest.approx(4.0)
    assert s["std_ms"] == pytest.approx(np.sqrt((0 + 9 + 1 + 4 + 36) / 4))
    assert s["throughput_per_s"] == pytest.approx(2 * 1000 / 4.0)
    lo, hi = s["p50_ci95_ms"]
    assert lo <= s["p50_ms"] <= hi


def test_stability_verdict_at_the_threshold() -> None:
    # two values a and b: mean m, sample std |a-b|/sqrt(2); pick CoV exactly at / just above 2.5 %
    m = 10.0
    d = STABLE_COV * m * np.sqrt(2) / 2
    assert summarize([m - d, m + d])["stable"]
    d2 = d * 1.01
    assert not summarize([m - d2, m + d2])["stable"]


def test_median_ci_order_statistics() -> None:
    data = np.arange(1.0, 101.0)  # n=100: ranks 40 and 61 (1-based) at 95 %
    assert median_ci(data) == [40.0, 61.0]
    assert median_ci([5.0]) == [5.0, 5.0]
    rng = np.random.default_rng(0)
    covered = sum(
        lo <= np.log(2) <= hi for lo, hi in (median_ci(rng.exponential(size=60)) for _ in range(800))
    )
    assert 0.92 <= covered / 800 <= 0.99  # nominal 95 % coverage of the true median


class _FakeTimer:
    description = "fake events"

    def __init__(self) -> None:
        self.log: list[str] = []
        self.n = 0

    def record_start(self) -> None:
        self.log.append("start")

    def record_end(self) -> None:
        self.log.append("end")

    def elapsed_ms(self) -> float:
        self.n += 1
        return float(self.n)


def test_device_timer_path_records_around_each_iteration() -> None:
    calls: list[str] = []
    timer = _FakeTimer()
    result = measure(
        lambda _: calls.append("fn"),
        [1, 2],
        LatencyConfig(warmup_iters=3, warmup_s=0.0, min_iters=10, min_time_s=0.0, max_time_s=5.0),
        synchronize=lambda: timer.log.append("sync"),
        device_timer=timer,
    )
    assert len(result.samples_ms) == 10 and result.device_samples_ms == [float(i) for i in range(1, 11)]
    assert result.device_timer == "fake events"
    # warm-up syncs (3) then per timed iteration: start event, end event, synchronize
    assert timer.log[:3] == ["sync"] * 3
    assert timer.log[3:] == ["start", "end", "sync"] * 10


def test_harness_overhead_is_small_and_positive() -> None:
    ns = harness_overhead_ns(2000)
    assert 0 < ns < 50_000  # generous: a loaded CI box; the benchmark script measures it properly


def test_validate_input_sets() -> None:
    ids = np.array([[101, 2023, 102]])
    ok = {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}
    assert validate_input_sets([ok, ok]) == 1
    assert validate_input_sets([ok, {**ok, "input_ids": ids + 1}]) == 2
    with pytest.raises(ValueError, match="all zeros"):
        validate_input_sets([ok, {"input_ids": np.zeros_like(ids), "token_type_ids": np.zeros_like(ids)}])
    with pytest.raises(ValueError, match="pixel_values"):
        validate_input_sets([{"pixel_values": np.zeros((1, 3, 2, 2), np.float32), "ids": ids}])
    with pytest.raises(ValueError, match="needs at least one input set"):
        validate_input_sets([])


class _CpuModel:
    backend = "hf"

    def __init__(self) -> None:
        self.synced = 0
        self.seen: list[int] = []

    def infer(self, inputs: dict) -> dict:
        self.seen.append(int(inputs["x"][0]))
        return {}

    def synchronize(self) -> None:
        self.synced += 1


def test_measure_model_on_cpu_uses_model_synchronize_and_no_device_timer() -> None:
    model = _CpuModel()
    assert model_stream(model, "cpu") is None
    assert device_synchronize(model, "cpu") == model.synchronize
    sets = [{"x": np.array([i + 1])} for i in range(3)]
    result = measure_model(
        model, "cpu", sets, LatencyConfig(warmup_iters=0, warmup_s=0.0, min_iters=6, min_time_s=0.0)
    )
    assert result.device_samples_ms is None and result.device_timer is None
    assert result.harness_overhead_ns is not None and result.harness_overhead_ns > 0
    assert model.seen[:6] == [1, 2, 3, 1, 2, 3]
    assert model.synced >= 6
