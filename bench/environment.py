"""Capture the environment every number is measured in: hardware, drivers, library versions.

Optional parts (NVML, TensorRT) are probed lazily; what cannot be read is recorded as ``None`` rather than
failing the run. No environment variables are recorded, so no secret can leak into a report.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from backends.device import no_cuda_without_asking_torch
from bench.fingerprint import runtime_libraries
from bench.gpu_processes import classify_processes, this_process_uses_gpu, uses_nvidia_device
from bench.threads import ThreadSettings

RECORDED_LIBRARIES = ("huggingface_hub",)
"""Recorded beside the runtime libraries (:func:`bench.fingerprint.runtime_libraries`, named by the
backends' specs), not part of the fingerprint: it downloads, it does not compute."""


def capture(threads: ThreadSettings | None = None) -> dict[str, Any]:
    """A JSON-able description of this machine and its ML stack. ``threads``: the run's thread settings,
    recorded as torch's while torch is not imported yet (they are applied when it is: capturing the
    environment does not import torch for them, and a cold run and its re-run record the same)."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": _affinity(),
        "torch_threads": _torch_threads(threads),
        "torch_interop_threads": _torch_interop_threads(threads),
        "libraries": library_versions(),
        "onnxruntime_providers": _ort_providers(),
        "cuda": _cuda(),
        "tensorrt_version": _tensorrt_version(),
    }
    nvml = nvml_snapshot()
    env["nvml_before"] = nvml
    env["warnings"] = gpu_warnings(nvml)
    return env


def library_versions(names: tuple[str, ...] | None = None) -> dict[str, str | None]:
    """Installed versions of ``names`` (default: the runtime libraries and :data:`RECORDED_LIBRARIES`;
    ``None`` when absent); cheap, metadata only, no imports."""
    if names is None:
        names = (*runtime_libraries(), *RECORDED_LIBRARIES)
    return {name: _version(name) for name in names}


def finish(env: dict[str, Any]) -> dict[str, Any]:
    """Add the after-run NVML snapshot (clocks, throttle reasons, other processes) and its warnings."""
    after = nvml_snapshot()
    env["nvml_after"] = after
    warnings = list(env.get("warnings") or [])
    for w in gpu_warnings(after):
        if w not in warnings:
            warnings.append(w)
    for w in throttle_warnings(env.get("nvml_before"), after):
        if w not in warnings:
            warnings.append(w)
    env["warnings"] = warnings
    return env


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _torch_interop_threads(threads: ThreadSettings | None) -> int | None:
    if threads is not None and "torch" not in sys.modules:
        return threads.inter_op
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_interop_threads()


def _tensorrt_version() -> str | None:
    """TensorRT's runtime version as the module reports it (the wheel's metadata may say another)."""
    try:
        import tensorrt
    except Exception:  # ImportError, or a broken install raising on import
        return None
    return getattr(tensorrt, "__version__", None)


def _torch_threads(threads: ThreadSettings | None) -> int | None:
    if threads is not None and "torch" not in sys.modules:
        return threads.intra_op
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def _ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except ImportError:
        return []


def _cuda() -> dict[str, Any] | None:
    if no_cuda_without_asking_torch():
        return None  # no NVIDIA driver: no CUDA device, whatever torch would say
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "index": index,
                "name": props.name,
                "compute_capability": f"{props.major}.{props.minor}",
                "total_memory_bytes": props.total_memory,
            }
        )
    return {
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
        "devices": devices,
        "driver_version": _nvml_driver(),
    }


def _nvml_driver() -> str | None:
    pynvml = _nvml()
    if pynvml is None:
        return None
    try:
        return _str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:  # NVML errors are environment facts, not failures of the run
        return None


# --- NVML (nvidia-ml-py, in the ``gpu`` extra; imported lazily) -----------------------------------------

THROTTLE_REASONS = {  # NVML clocks-event/throttle reason bits -> names
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
BENIGN_THROTTLE = {"gpu_idle", "applications_clocks_setting"}


def decode_throttle(mask: int) -> list[str]:
    """Names of the throttle reason bits set in ``mask`` (unknown bits as hex)."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    return names + ([hex(unknown)] if unknown else [])


def nvml_module() -> Any:
    """pynvml, initialised, or ``None`` (not installed, or no driver answers)."""
    return _nvml()


def _nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # a field the GPU or driver does not support
        return None


def nvml_snapshot() -> list[dict[str, Any]] | None:
    """Per GPU: clocks (SM, memory, graphics; current and max), throttle reasons, temperature, power,
    memory used and the compute processes on it (``other_processes``: those not this process).
    ``None`` when NVML (nvidia-ml-py) is not installed or no driver answers."""
    pynvml = _nvml()
    if pynvml is None:
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception:
        return None
    out = []
    for index in range(count):
        handle = _try(pynvml.nvmlDeviceGetHandleByIndex, index)
        if handle is not None:
            out.append(_gpu_snapshot(pynvml, index, handle))
    return out


def _gpu_snapshot(pynvml: Any, index: int, h: Any) -> dict[str, Any]:
    clocks = {}
    for label, const in (
        ("sm", "NVML_CLOCK_SM"),
        ("mem", "NVML_CLOCK_MEM"),
        ("graphics", "NVML_CLOCK_GRAPHICS"),
    ):
        kind = getattr(pynvml, const, None)
        if kind is not None:
            clocks[f"{label}_mhz"] = _try(pynvml.nvmlDeviceGetClockInfo, h, kind)
            clocks[f"{label}_max_mhz"] = _try(pynvml.nvmlDeviceGetMaxClockInfo, h, kind)
    reasons_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    mask = _try(reasons_fn, h) if reasons_fn else None
    processes = _processes(pynvml, h)
    others, _, note = classify_processes(processes, os.getpid(), uses_nvidia_device, this_process_uses_gpu())
    power = _try(pynvml.nvmlDeviceGetPowerUsage, h)
    mem = _try(pynvml.nvmlDeviceGetMemoryInfo, h)
    name = _try(pynvml.nvmlDeviceGetName, h)
    return {
        "index": index,
        "name": _str(name) if name is not None else None,
        "clocks": clocks,
        "throttle_mask": mask,
        "throttle_reasons": decode_throttle(mask) if mask is not None else None,
        "temperature_c": _try(pynvml.nvmlDeviceGetTemperature, h, getattr(pynvml, "NVML_TEMPERATURE_GPU", 0)),
        "power_w": power / 1000.0 if power is not None else None,
        "memory_used_bytes": int(mem.used) if mem is not None else None,
        "processes": processes,
        "other_processes": others,
        "process_note": note,
    }


def _processes(pynvml: Any, h: Any) -> list[dict[str, Any]]:
    procs = _try(pynvml.nvmlDeviceGetComputeRunningProcesses, h) or []
    return [{"pid": int(p.pid), "used_memory_bytes": _try(int, p.usedGpuMemory)} for p in procs]


def nvml_handle_for(cuda_index: int) -> Any:
    """NVML's handle for torch's CUDA device ``cuda_index``, matched by UUID (``CUDA_VISIBLE_DEVICES``
    renumbers devices, NVML does not); ``None`` without NVML."""
    pynvml = _nvml()
    if pynvml is None:
        return None
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except Exception:  # older torch without .uuid, or MIG: fall back to the index when nothing is hidden
        if os.environ.get("CUDA_VISIBLE_DEVICES"):
            return None
        return _try(pynvml.nvmlDeviceGetHandleByIndex, cuda_index)


def nvml_conditions(pynvml: Any, h: Any) -> dict[str, Any]:
    """SM clock, throttle mask, temperature and this process's memory on one GPU, for the sampler."""
    reasons_fn = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    processes = _processes(pynvml, h)
    _, own, _ = classify_processes(processes, os.getpid(), uses_nvidia_device, True)
    return {
        "sm_mhz": _try(pynvml.nvmlDeviceGetClockInfo, h, getattr(pynvml, "NVML_CLOCK_SM", 1)),
        "throttle_mask": _try(reasons_fn, h) if reasons_fn else None,
        "temperature_c": _try(pynvml.nvmlDeviceGetTemperature, h, getattr(pynvml, "NVML_TEMPERATURE_GPU", 0)),
        "process_used_bytes": own["used_memory_bytes"] if own else None,
    }


def gpu_warnings(snapshot: list[dict[str, Any]] | None) -> list[str]:
    """A warning per GPU that another process uses (its timings are then shared and unreliable)."""
    warnings = []
    for gpu in snapshot or []:
        others = gpu.get("other_processes") or []
        if others:
            pids = ", ".join(str(p["pid"]) for p in others)
            warnings.append(
                f"GPU {gpu['index']} ({gpu.get('name')}) is used by {len(others)} other process(es) "
                f"(pid {pids}); latency numbers on it may be disturbed"
            )
    return warnings


def throttle_warnings(before: list[dict[str, Any]] | None, after: list[dict[str, Any]] | None) -> list[str]:
    """A warning per GPU throttled (power, thermal, hardware slowdown) at the start or end of the run."""
    warnings = []
    for when, snapshot in (("before", before), ("after", after)):
        for gpu in snapshot or []:
            bad = [r for r in gpu.get("throttle_reasons") or [] if r not in BENIGN_THROTTLE]
            if bad:
                warnings.append(f"GPU {gpu['index']} throttled {when} the run: {', '.join(bad)}")
    return warnings
