"""Memory figures: host RSS now and at peak, and CUDA peak allocated/reserved bytes."""

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
