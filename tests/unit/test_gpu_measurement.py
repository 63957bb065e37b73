"""Issue 16's measurement decisions as pure functions, on the CPU: device time ends before the host copy,
the sampler marks throttled rows, NVML's host PIDs are matched to this process in a container, and the
TensorRT-EP engine cache is keyed by the package's content. tests/gpu/test_gpu_fixes.py runs them on CUDA.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bench.environment import gpu_warnings
from bench.gpu_processes import classify_processes
from bench.gpu_sampler import GpuSample, GpuSampler, summarize_samples
from bench.latency import LatencyConfig, measure, timed_calls

CFG = LatencyConfig(warmup_iters=1, warmup_s=0.0, min_iters=3, min_time_s=0.0, max_time_s=5.0)


class SpyTimer:
    description = "spy"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def record_start(self) -> None:
        self.log.append("start")

    def record_end(self) -> None:
        self.log.append("end")

    def elapsed_ms(self) -> float:
        return 1.0


class SplitModel:
    """A model whose ``infer`` is ``fetch(run(x))``, as the torch, hf and trt classes now are."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def run(self, inputs):
        self.log.append("run")
        return {"y": inputs["x"] * 2}

    def fetch(self, outputs):
        self.log.append("fetch")
        return outputs

    def infer(self, inputs):
        return self.fetch(self.run(inputs))


def test_device_timer_ends_before_the_host_copy() -> None:
    """Main recorded the end event after ``infer`` returned, i.e. after the blocking ``.cpu()``: device
    time included the copy and host gaps. Now: start, run, end, fetch."""
    log: list[str] = []
    model = SplitModel(log)
    run, fetch = timed_calls(model)
    measure(run, [{"x": np.ones(2)}], CFG, device_timer=SpyTimer(log), fetch=fetch)
    timed = log[log.index("start") :]
    assert timed[:4] == ["start", "run", "end", "fetch"]
    assert all(timed[i : i + 4] == ["start", "run", "end", "fetch"] for i in range(0, len(timed), 4))


def test_a_model_without_run_fetch_is_timed_through_infer() -> None:
    class Plain:
        def infer(self, inputs):
            return inputs

    run, fetch = timed_calls(Plain())
    assert fetch is None and run({"a": 1}) == {"a": 1}


def test_a_forwarding_wrapper_is_timed_through_its_own_infer() -> None:
    """Wrappers (bench.cputime.CpuTimedModel, bench.planted.PlantedModel) forward unknown attributes to
    the model they wrap; timing the inner run/fetch would skip what the wrapper adds."""
    from bench.cputime import CpuTimedModel

    log: list[str] = []
    wrapper = CpuTimedModel(SplitModel(log))
    run, fetch = timed_calls(wrapper)
    assert fetch is None and run == wrapper.infer


def test_torch_family_models_split_device_work_from_the_copy() -> None:
    """The real torch model class: ``run`` returns tensors (left on the device), ``fetch`` numpy."""
    import torch

    from backends.torch.model import TorchModel

    module = torch.nn.Linear(3, 2)
    model = TorchModel(module, {"input_names": ["x"], "output_names": ["y"]}, Path("."), "cpu")
    out = model.run({"x": np.ones((2, 3), np.float32)})
    assert isinstance(out["y"], torch.Tensor)
    host = model.fetch(out)
    assert isinstance(host["y"], np.ndarray) and host["y"].shape == (2, 2)
    np.testing.assert_array_equal(model.infer({"x": np.ones((2, 3), np.float32)})["y"], host["y"])


# ---- throttle / clocks / memory sampled during the run ------------------------------------------------


def test_a_row_measured_while_throttled_is_marked() -> None:
    """Main read throttle reasons before and after the run only (an idle GPU): never seen. A power cap in
    one sample during the run marks the row; idle and application-clock bits do not."""
    idle = GpuSample(0.0, sm_mhz=1980, throttle_mask=0x1, temperature_c=40, device_used_bytes=1000)
    capped = GpuSample(0.05, sm_mhz=1410, throttle_mask=0x4 | 0x20, temperature_c=83, device_used_bytes=5000)
    calm = summarize_samples([idle, idle], baseline_used_bytes=800)
    assert not calm["throttled"] and calm["throttle_reasons"] == []
    hot = summarize_samples([idle, capped, idle], baseline_used_bytes=800)
    assert hot["throttled"] and hot["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]
    assert hot["throttled_samples"] == 1 and hot["sm_mhz_min"] == 1410 and hot["sm_mhz_max"] == 1980
    assert hot["temperature_c_max"] == 83
    assert hot["memory_device_peak_bytes"] == 5000 and hot["memory_device_peak_delta_bytes"] == 4200
    assert hot["memory_process_peak_bytes"] is None


def test_process_memory_and_the_device_delta_are_two_quantities() -> None:
    """Issue 24, point 9: main reported this process's absolute NVML usage (CUDA context included) as the
    "delta" when its entry was found, and peak minus baseline otherwise, under one name."""
    samples = [
        GpuSample(0.0, device_used_bytes=9000, process_used_bytes=3000),
        GpuSample(0.1, device_used_bytes=9500, process_used_bytes=3400),
    ]
    summary = summarize_samples(samples, baseline_used_bytes=8000)
    assert summary["memory_process_peak_bytes"] == 3400  # absolute, not a delta
    assert summary["memory_device_peak_bytes"] == 9500
    assert summary["memory_device_peak_delta_bytes"] == 1500  # the rise above the pre-load reading
    assert "memory_peak_delta_bytes" not in summary  # the ambiguous name is gone
    no_baseline = summarize_samples(samples)
    assert no_baseline["memory_device_peak_delta_bytes"] is None
    assert no_baseline["memory_process_peak_bytes"] == 3400


def test_sampler_thread_samples_while_the_loop_runs() -> None:
    reads: list[float] = []

    def read() -> GpuSample:
        reads.append(time.perf_counter())
        return GpuSample(reads[-1], sm_mhz=1000 + len(reads), throttle_mask=0x8 if len(reads) == 3 else 0)

    with GpuSampler(read, interval_s=0.01) as sampler:
        time.sleep(0.15)
    assert len(sampler.samples) >= 5  # start + several in-loop readings + stop
    assert sampler.summary()["throttle_reasons"] == ["hw_slowdown"]


def test_latency_row_carries_the_mark(tmp_path: Path) -> None:
    from bench.latency import LatencyResult
    from bench.report import Report

    report = Report(family="f", architecture="a", task="embedding", recipe="r.toml", environment={})
    result = LatencyResult(samples_ms=[1.0, 1.1, 1.2], warmup_iters=1, total_s=0.1)
    result.gpu_conditions = summarize_samples([GpuSample(0.0, throttle_mask=0x40)])
    report.add_latency("v", "trt", "cuda:0", 1, result)
    row = report.latency[-1]
    assert row["throttled"] is True and row["gpu_conditions"]["throttle_reasons"] == ["hw_thermal_slowdown"]


# ---- own process among NVML's (container PIDs) ---------------------------------------------------------


def test_outside_a_container_our_pid_is_in_the_list() -> None:
    procs = [{"pid": 100, "used_memory_bytes": 1}, {"pid": 200, "used_memory_bytes": 2}]
    others, own, note = classify_processes(procs, 100, lambda pid: True, True)
    assert [p["pid"] for p in others] == [200] and own == procs[0] and note is None


def test_in_a_container_nvml_host_pid_is_recognised_as_ours() -> None:
    """Main compared NVML's host PIDs with os.getpid() and flagged its own process as another one."""
    procs = [{"pid": 48213, "used_memory_bytes": 900}]  # host PID; ours is 7 in the container
    others, own, note = classify_processes(procs, 7, lambda pid: False, True)
    assert others == [] and note is not None and "48213" in note
    assert own is not None and own["used_memory_bytes"] == 900
    snapshot = [{"index": 0, "name": "H200", "other_processes": others}]
    assert gpu_warnings(snapshot) == []


def test_in_a_container_a_second_process_is_still_reported() -> None:
    procs = [{"pid": 48213, "used_memory_bytes": 900}, {"pid": 51000, "used_memory_bytes": 300}]
    others, own, note = classify_processes(procs, 7, lambda pid: False, True)
    assert len(others) == 1 and "one is this process" in (note or "")
    assert own is None  # cannot tell which: the device's used memory is reported instead
    # a sibling process of our own namespace that has /dev/nvidia* open is certainly another
    others, own, _ = classify_processes(procs, 7, lambda pid: pid == 51000, True)
    assert [p["pid"] for p in others] == [51000] and own == procs[0]


def test_before_this_process_touches_the_gpu_every_process_is_another() -> None:
    procs = [{"pid": 48213, "used_memory_bytes": 900}]
    others, own, note = classify_processes(procs, 7, lambda pid: False, False)
    assert others == procs and own is None and note is None


def test_uses_nvidia_device_on_a_real_pid() -> None:
    from bench.gpu_processes import uses_nvidia_device

    assert uses_nvidia_device(os.getpid()) is False  # this CPU test process opened no /dev/nvidia*
    assert uses_nvidia_device(2**22 + 12345) is False  # no such PID here


# ---- TensorRT-EP engine cache ---------------------------------------------------------------------------


def test_engine_cache_is_keyed_by_package_content_and_options(tmp_path: Path) -> None:
    """Main shared one cache folder: onnxruntime names engines after `weights.onnx`, so a re-export with
    other weights silently ran the old engine."""
    from backends.onnx.model import engine_cache_key, package_digests

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, weights in ((a, b"graph-v1"), (b, b"graph-v2")):
        folder.mkdir()
        (folder / "weights.onnx").write_bytes(weights)
        (folder / "tokenizer.json").write_text("{}")  # not part of the graph: ignored
    da, db = package_digests(a), package_digests(b)
    assert set(da) == {"weights.onnx"}
    v = VERSIONS
    assert engine_cache_key(da, {}, v) != engine_cache_key(db, {}, v)
    assert engine_cache_key(da, {}, v) == engine_cache_key(dict(da), {"trt_engine_cache_enable": True}, v)
    fp16 = engine_cache_key(da, {"trt_fp16_enable": True}, v)
    assert fp16 != engine_cache_key(da, {"trt_fp16_enable": False}, v)
    (a / "weights.onnx.data").write_bytes(b"external")
    assert engine_cache_key(package_digests(a), {}, v) != engine_cache_key(da, {}, v)


VERSIONS = {
    "tensorrt": "10.16.1.11",
    "onnxruntime": "1.31.1",
    "gpu": "NVIDIA H200",
    "compute_capability": "9.0",
}


def test_engine_cache_key_changes_with_tensorrt_onnxruntime_and_the_gpu() -> None:
    """Issue 24, point 8: main's key left the builder out, so a cache root kept across an upgrade handed
    back an engine built by another TensorRT, onnxruntime or GPU."""
    from backends.errors import ModelLoadError
    from backends.onnx.model import engine_cache_key

    digests = {"weights.onnx": "ab" * 32}
    base = engine_cache_key(digests, {}, VERSIONS)
    for key, other in (
        ("tensorrt", "10.13.3.9"),
        ("onnxruntime", "1.30.0"),
        ("gpu", "NVIDIA H100 80GB HBM3"),
        ("compute_capability", "8.9"),
    ):
        assert engine_cache_key(digests, {}, {**VERSIONS, key: other}) != base, key
    with pytest.raises(ModelLoadError, match=r"cache key needs tensorrt; pass trt_engine_cache_enable=False"):
        engine_cache_key(digests, {}, {**VERSIONS, "tensorrt": None})
