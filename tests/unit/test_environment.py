"""Environment capture: NVML clocks, throttle reasons and other GPU processes, with a fake pynvml."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from bench import environment


def _fake_pynvml(other_pid: int | None, throttle: int) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_CLOCK_GRAPHICS, m.NVML_TEMPERATURE_GPU = 1, 2, 0, 0
    procs = [types.SimpleNamespace(pid=environment.os.getpid(), usedGpuMemory=100)]
    if other_pid:
        procs.append(types.SimpleNamespace(pid=other_pid, usedGpuMemory=2**30))
    funcs: dict[str, Any] = {
        "nvmlInit": lambda: None,
        "nvmlSystemGetDriverVersion": lambda: b"550.54",
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: f"h{i}",
        "nvmlDeviceGetName": lambda h: b"NVIDIA H100",
        "nvmlDeviceGetClockInfo": lambda h, k: {1: 1980, 2: 2619, 0: 1980}[k],
        "nvmlDeviceGetMaxClockInfo": lambda h, k: {1: 1980, 2: 2619, 0: 1980}[k],
        "nvmlDeviceGetCurrentClocksEventReasons": lambda h: throttle,
        "nvmlDeviceGetComputeRunningProcesses": lambda h: procs,
        "nvmlDeviceGetTemperature": lambda h, k: 41,
        "nvmlDeviceGetPowerUsage": lambda h: 71500,
        "nvmlDeviceGetMemoryInfo": lambda h: (_ for _ in ()).throw(RuntimeError("not supported")),
    }
    for name, fn in funcs.items():
        setattr(m, name, fn)
    return m


def test_nvml_snapshot_and_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(other_pid=4242, throttle=0x1 | 0x4))
    snap = environment.nvml_snapshot()
    assert snap is not None and len(snap) == 1
    gpu = snap[0]
    assert gpu["name"] == "NVIDIA H100" and gpu["clocks"]["sm_mhz"] == 1980
    assert gpu["throttle_reasons"] == ["gpu_idle", "sw_power_cap"]
    assert gpu["power_w"] == pytest.approx(71.5) and gpu["memory_used_bytes"] is None  # unsupported field
    assert [p["pid"] for p in gpu["other_processes"]] == [4242]
    env = environment.finish({"nvml_before": snap, "warnings": environment.gpu_warnings(snap)})
    text = " ".join(env["warnings"])
    assert "other process" in text and "4242" in text
    assert "sw_power_cap" in text and "gpu_idle" not in text  # idle is benign
    assert env["nvml_after"] is not None


def test_without_nvml_everything_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert environment.nvml_snapshot() is None
    env = environment.capture()
    assert env["nvml_before"] is None and env["warnings"] == []
    for key in ("cpu", "cpu_count", "torch_threads", "libraries", "tensorrt_version", "cpu_affinity"):
        assert key in env


def test_decode_throttle_unknown_bits() -> None:
    assert environment.decode_throttle(0x40 | 0x10000) == ["hw_thermal_slowdown", "0x10000"]
