"""Device strings: ``cpu``, ``cuda``, ``cuda:N``. Asking for a GPU that is not there is an error, never a
silent fallback to the CPU (a benchmark that quietly ran on the CPU is worse than no benchmark).

Every function here also takes a ``torch.device``: the consumer (``inference_models``) passes one to
``from_pretrained``, so every model class must accept either form.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from backends.errors import DeviceUnavailableError, InvalidDeviceError

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def device_string(device: Any) -> str:
    """``cpu`` / ``cuda`` / ``cuda:N`` from a string or a ``torch.device`` (checked by its attributes, so
    torch is not imported); ValueError naming the accepted forms for anything else."""
    if isinstance(device, str):
        return device.strip().lower()
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if isinstance(kind, str) and (index is None or isinstance(index, int)):
        return kind if index is None else f"{kind}:{index}"
    raise ValueError(
        f"device {device!r} is not accepted (accepted: 'cpu', 'cuda', 'cuda:N' or a torch.device)"
    )


def parse_device(spec: Any) -> tuple[str, int | None]:
    """Split ``cuda:1`` (or ``torch.device("cuda", 1)``) into ``("cuda", 1)``; raise ValueError naming the
    accepted forms otherwise."""
    spec = device_string(spec)
    match = _DEVICE_RE.match(spec)
    if not match or (match.group(1) == "cpu" and match.group(2) is not None):
        raise ValueError(f"unknown device '{spec}' (accepted: cpu, cuda, cuda:N)")
    index = int(match.group(2)) if match.group(2) is not None else None
    return match.group(1), index


NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")
"""What an NVIDIA driver leaves on Linux: its proc entry, its control device, or WSL2's GPU bridge."""


def cuda_driver_present(platform: str = sys.platform, exists: Callable[[str], bool] = os.path.exists) -> bool:
    """Whether CUDA could be available here at all. On Linux a machine without any of
    :data:`NVIDIA_DRIVER_FILES` has no CUDA device, so the answer needs no torch import (about 1.6 s of a
    fully reused ``pack`` run); elsewhere only torch can tell."""
    if not platform.startswith("linux"):
        return True
    return any(exists(path) for path in NVIDIA_DRIVER_FILES)


def no_cuda_without_asking_torch() -> bool:
    """True when it is certain, without importing torch, that there is no CUDA device: torch is not
    imported yet and there is no NVIDIA driver. The device probe and the environment capture ask this
    before they would import torch (a fully reused run needs none)."""
    return "torch" not in sys.modules and not cuda_driver_present()


def cuda_device_count() -> int:
    """Number of CUDA devices torch sees (0 when torch has no CUDA build or there is no NVIDIA driver)."""
    if no_cuda_without_asking_torch():
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class Device(str):
    """A device string already resolved against this machine (canonical and present). A run resolves its
    ``--devices`` once; model classes that resolve what they are given (a consumer may pass ``"cuda"`` or a
    ``torch.device``) take a ``Device`` as it is instead of asking again."""

    __slots__ = ()


def resolve_device(spec: Any) -> Device:
    """Validate ``spec`` against this machine and return its canonical form (``cuda`` -> ``cuda:0``); a
    :class:`Device` is returned unchanged (it was resolved once already)."""
    if isinstance(spec, Device):
        return spec
    try:
        kind, index = parse_device(spec)
    except ValueError as exc:
        raise InvalidDeviceError(str(exc)) from None  # bad input (exit 2), not a missing GPU (exit 3)
    if kind == "cpu":
        return Device("cpu")
    count = cuda_device_count()
    if count == 0:
        raise DeviceUnavailableError(
            f"device '{spec}' was asked for but this machine has no CUDA device visible to torch; "
            "run on a GPU box, or pass --devices cpu"
        )
    index = 0 if index is None else index
    if index >= count:
        raise DeviceUnavailableError(
            f"device '{spec}' does not exist: this machine has {count} CUDA device(s)"
        )
    return Device(f"cuda:{index}")


def available_devices() -> list[str]:
    """``cpu`` plus ``cuda:0`` when a GPU is present: the devices a default run verifies on."""
    return ["cpu"] + (["cuda:0"] if cuda_device_count() else [])


def resolve_devices(specs: list[str]) -> list[Device]:
    """Resolve each of ``specs`` and drop repeats (``cuda`` and ``cuda:0`` are one device), keeping order:
    each distinct device is verified and reported on its own."""
    out: list[Device] = []
    for spec in specs:
        device = resolve_device(spec)
        if device not in out:
            out.append(device)
    return out


def export_device(devices: list[str]) -> str:
    """The device exporters build on: the first CUDA device of the run (``--devices cpu,cuda:1`` builds
    on ``cuda:1``, never silently on cuda:0), else the CPU. Device-independent exporters (ONNX, torch)
    trace on the CPU whatever this says; device-bound ones (TensorRT) build exactly here."""
    return next((d for d in devices if d.startswith("cuda")), "cpu")
