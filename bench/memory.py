"""Memory figures: host RSS now and at peak; on CUDA the device's own used memory (``cudaMemGetInfo``, so
onnxruntime's arena and TensorRT's activations count as much as torch's tensors) and, beside it, torch's
caching-allocator peaks (which only see torch). The peak *during* timed runs comes from
:mod:`bench.gpu_sampler`."""

from __future__ import annotations

import resource
import sys
from typing import Any

import psutil


def rss_bytes() -> int:
    """Current resident set size of this process."""
    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """Peak RSS of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_cuda_peak(device: str) -> None:
    """Start a fresh CUDA peak window for ``device`` (no-op on the CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak(device: str) -> dict[str, Any]:
    """Peak allocated/reserved bytes by torch's allocator on ``device`` since the last reset."""
    if not device.startswith("cuda"):
        return {}
    import torch

    return {
        "cuda_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
        "cuda_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
    }


def device_used_bytes(device: str) -> int | None:
    """Used memory of the whole CUDA ``device`` now (total - free, from cudaMemGetInfo); ``None`` on
    the CPU. Device-wide: read before and after a load, the difference is what the load took whatever
    library allocated it."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    return int(total - free)


def device_delta(device: str, before: int | None) -> dict[str, Any]:
    """``cuda_device_used_bytes`` now and ``cuda_device_delta_bytes`` above ``before`` (see
    :func:`device_used_bytes`); empty on the CPU."""
    now = device_used_bytes(device)
    if now is None:
        return {}
    return {
        "cuda_device_before_bytes": before,
        "cuda_device_used_bytes": now,
        "cuda_device_delta_bytes": None if before is None else now - before,
    }
