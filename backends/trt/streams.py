"""Which CUDA stream TensorRT runs on. ``execute_async_v3`` on the legacy default stream makes TensorRT add
device-wide synchronizations (it warns about it), so latencies come out pessimistic: the model class owns
a dedicated non-default stream, exposes it as ``model.stream``, and the timers record on that stream."""

from __future__ import annotations

from typing import Any

# cudaStreamLegacy is 0x1 and cudaStreamPerThread 0x2; a null handle is the legacy default stream too.
DEFAULT_STREAM_HANDLES = frozenset({0, 1, 2})


def is_default_stream(handle: int) -> bool:
    """True for a handle naming a default stream (legacy or per-thread), which TensorRT must not use."""
    return int(handle) in DEFAULT_STREAM_HANDLES


def dedicated_stream(device: str) -> Any:
    """A new non-default ``torch.cuda.Stream`` on ``device``; refuses a default one."""
    import torch

    stream = torch.cuda.Stream(device=torch.device(device))
    if is_default_stream(stream.cuda_stream):
        raise RuntimeError(f"torch returned a default stream for {device}; TensorRT needs its own stream")
    return stream
