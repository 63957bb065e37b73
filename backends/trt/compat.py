"""Can this engine run here? Pure logic over ``trt_config.json`` and the local facts (no GPU needed).

A TensorRT engine is tied to the TensorRT version that built it (unless built version-compatible, then any
newer TensorRT of the same major runs it) and to the GPU's compute capability (unless built with a hardware
compatibility level such as Ampere+). Loading one elsewhere makes TensorRT crash or fail obscurely, so the
model class checks first and raises ModelLoadError saying what was built for what, and what would work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.errors import ModelLoadError


@dataclass(frozen=True)
class LocalGPU:
    """What the loading machine has."""

    trt_version: str
    cc: str
    """Compute capability, ``"8.9"``."""
    name: str


def _version_tuple(version: str, parts: int = 3) -> tuple[int, ...]:
    out = []
    for piece in str(version).split(".")[:parts]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def check_compatible(config: dict[str, Any], local: LocalGPU, engine: str = "engine.plan") -> list[str]:
    """Raise ModelLoadError when the engine cannot run on ``local``; return warnings that do not block."""
    built_trt = str(config.get("trt_version", ""))
    built_cc = str(config.get("cuda_device_cc", ""))
    built_gpu = str(config.get("cuda_device_type", "unknown GPU"))
    problems = []
    if not built_trt or not built_cc:
        raise ModelLoadError(
            f"{engine}: trt_config.json lacks trt_version/cuda_device_cc; rebuild the package"
        )
    if config.get("version_compatible"):
        ok = _version_tuple(local.trt_version, 1) == _version_tuple(built_trt, 1) and _version_tuple(
            local.trt_version
        ) >= _version_tuple(built_trt)
        if not ok:
            problems.append(
                f"it was built version-compatible with TensorRT {built_trt}, which runs on TensorRT "
                f"{_version_tuple(built_trt, 1)[0]}.x >= {built_trt}, "
                f"but TensorRT {local.trt_version} is installed"
            )
    elif _version_tuple(local.trt_version) != _version_tuple(built_trt):
        problems.append(
            f"it was built with TensorRT {built_trt} but TensorRT {local.trt_version} is installed "
            f"(install tensorrt=={built_trt}, or rebuild the engine with this TensorRT)"
        )
    hardware = str(config.get("hardware_compatibility", "none")).lower()
    if hardware == "ampere_plus":
        if _version_tuple(local.cc, 2) < (8, 0):
            problems.append(
                f"it was built Ampere+-compatible (compute capability >= 8.0) and this GPU, {local.name}, "
                f"has compute capability {local.cc}"
            )
    elif _version_tuple(local.cc, 2) != _version_tuple(built_cc, 2):
        problems.append(
            f"it was built for compute capability {built_cc} ({built_gpu}) and this GPU, {local.name}, has "
            f"compute capability {local.cc} "
            f"(use a package built for CC {local.cc}, or rebuild it on this GPU)"
        )
    if problems:
        raise ModelLoadError(f"{engine} cannot run here: " + "; ".join(problems))
    warnings = []
    if hardware == "none" and built_gpu != local.name and not config.get("same_cc_compatible"):
        warnings.append(
            f"{engine} was built on {built_gpu} and runs on {local.name} "
            f"(same compute capability {local.cc}); "
            "TensorRT allows it, but tactics were timed on the other GPU"
        )
    return warnings


def local_gpu(device_index: int, trt_version: str) -> LocalGPU:
    """The facts of CUDA device ``device_index`` (via torch) and the installed TensorRT."""
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return LocalGPU(
        trt_version=trt_version, cc=f"{major}.{minor}", name=torch.cuda.get_device_name(device_index)
    )
