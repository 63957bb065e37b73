"""Which CUDA stream a model enqueues on, and CUDA events recorded on it: what the latency harness
(:mod:`bench.latency`) needs to time device work. The model's own ``stream`` attribute wins (TensorRT's
dedicated stream), torch-based backends use torch's current stream, others get host time only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CudaEventTimer:
    """A pair of CUDA events recorded on ``stream`` around each iteration (``torch.cuda.Event``)."""

    def __init__(self, stream: Any, description: str) -> None:
        import torch

        self.stream = stream
        self.description = description
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def record_start(self) -> None:
        self._start.record(self.stream)

    def record_end(self) -> None:
        self._end.record(self.stream)

    def elapsed_ms(self) -> float:
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


def uses_torch_stream(model: Any) -> bool:
    """Whether ``model`` enqueues work on torch's current stream: its own ``torch_stream`` attribute, else
    its backend's declaration (``BackendSpec.torch_stream``). Others (onnxruntime, TensorRT without a
    ``stream`` attribute) use streams torch cannot see: events on torch's stream would time nothing, so
    they get host time (synchronized device) only."""
    own = getattr(model, "torch_stream", None)
    if own is not None:
        return bool(own)
    from backends.registry import find_backend

    spec = find_backend(str(getattr(model, "backend", "") or ""))
    return bool(spec and spec.torch_stream)


def model_stream(model: Any, device: str) -> tuple[Any, str] | None:
    """The CUDA stream ``model`` enqueues on and where it came from, or ``None`` when unknown/CPU.

    ``model.stream`` (a ``torch.cuda.Stream``, or an int/pointer handle wrapped with
    ``torch.cuda.ExternalStream``) wins; torch-based backends fall back to
    ``torch.cuda.current_stream(device)``."""
    if not device.startswith("cuda"):
        return None
    import torch

    dev = torch.device(device)
    stream = getattr(model, "stream", None)
    if stream is not None:
        if isinstance(stream, int):
            stream = torch.cuda.ExternalStream(stream, device=dev)
        elif not isinstance(stream, torch.cuda.Stream) and hasattr(stream, "cuda_stream"):
            stream = torch.cuda.ExternalStream(stream.cuda_stream, device=dev)
        return stream, "model.stream"
    if uses_torch_stream(model):
        return torch.cuda.current_stream(dev), f"torch.cuda.current_stream({device})"
    return None


def device_synchronize(model: Any, device: str) -> Callable[[], None] | None:
    """What must run inside each sample so queued work is counted: the model's own ``synchronize`` and,
    on CUDA, ``torch.cuda.synchronize`` of *the model's* device (all its streams)."""
    own = getattr(model, "synchronize", None)
    if not device.startswith("cuda"):
        return own
    import torch

    dev = torch.device(device)

    def sync() -> None:
        if own is not None:
            own()
        torch.cuda.synchronize(dev)

    return sync


def stage_before_start(model: Any, run: Callable[[Any], Any], timer: Any) -> Callable[[Any], Any]:
    """``run`` for the device-timed loop of a model that copies its feed to the device in a separate
    ``stage`` (TensorRT: a synchronous, pageable host-to-device copy): stage, then re-record the timer's
    start event, then run. The copy stays in the host figure (the host clock started before it) and out
    of the device figure, which is then the model's own work. Models without ``stage``, or no device
    timer: ``run`` as it is (the torch-family classes still copy their feed inside ``run``, so their
    device time includes that copy; defining ``stage`` on them would take it out too)."""
    stage = getattr(type(model), "stage", None)
    if timer is None or not callable(stage):
        return run

    def staged_run(inputs: Any) -> Any:
        staged = model.stage(inputs)
        timer.record_start()  # an event recorded again marks the latest point: after the copy
        return run(staged)

    return staged_run
