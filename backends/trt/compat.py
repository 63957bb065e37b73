"""Can this engine run here, and how must it be loaded? Pure logic over ``trt_config.json`` and the local
facts (no GPU needed).

TensorRT's rules (developer guide, "Version Compatibility" / "Hardware Compatibility", 8.6 to 11.x):

* By default an engine runs only on the TensorRT version that built it.
* Built with ``VERSION_COMPATIBLE`` (TensorRT >= 8.6), it runs on that version and any later one,
  across majors too (10.x engines run on 11.x), never on an older one. The plan then embeds a copy of
  the builder's *lean runtime*, which is host code run from the plan: the loading runtime must set
  ``engine_host_code_allowed`` or deserialization fails.
* Built with ``EXCLUDE_LEAN_RUNTIME`` as well, the plan carries no runtime: the building version itself
  deserializes it directly, and any later version only after ``IRuntime.load_runtime(path)`` has loaded
  the lean runtime library (``libnvinfer_lean.so``) *of the building version*. A plain Runtime of another
  version cannot load it.
* The GPU's compute capability must match, unless built with a hardware compatibility level (Ampere+:
  CC >= 8.0).

Loading an engine elsewhere makes TensorRT crash or fail obscurely, so the model class asks
:func:`load_plan` first: it raises ModelLoadError saying what was built for what and what would work, or
returns how to load (host code, lean runtime) plus warnings that do not block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class LoadPlan:
    """How to load an engine that can run here."""

    host_code_allowed: bool
    """Set ``runtime.engine_host_code_allowed``: the plan embeds a lean runtime (version-compatible)."""
    lean_runtime_of: str | None = None
    """Load this TensorRT version's lean runtime library before deserializing (lean runtime excluded and
    another TensorRT installed); ``None`` when the installed runtime deserializes the plan itself."""
    warnings: list[str] = field(default_factory=list)


MIN_VERSION_COMPATIBLE = (8, 6)


def check_compatible(config: dict[str, Any], local: LocalGPU, engine: str = "engine.plan") -> list[str]:
    """Raise ModelLoadError when the engine cannot run on ``local``; return warnings that do not block."""
    return load_plan(config, local, engine).warnings


def load_plan(
    config: dict[str, Any],
    local: LocalGPU,
    engine: str = "engine.plan",
    *,
    lean_runtime_available: bool = False,
) -> LoadPlan:
    """Decide whether and how ``engine`` loads on ``local``; ``lean_runtime_available``: the caller has
    the building version's lean runtime library to load (``lean_runtime_path=``)."""
    built_trt = str(config.get("trt_version", ""))
    built_cc = str(config.get("cuda_device_cc", ""))
    built_gpu = str(config.get("cuda_device_type", "unknown GPU"))
    problems = []
    if not built_trt or not built_cc:
        raise ModelLoadError(
            f"{engine}: trt_config.json lacks trt_version/cuda_device_cc; rebuild the package"
        )
    version_compatible = bool(config.get("version_compatible"))
    lean_excluded = version_compatible and bool(config.get("exclude_lean_runtime"))
    same_version = _version_tuple(local.trt_version) == _version_tuple(built_trt)
    lean_runtime_of = None
    if version_compatible:
        if _version_tuple(built_trt, 2) < MIN_VERSION_COMPATIBLE:
            problems.append(f"version-compatible engines need TensorRT >= 8.6 to build, not {built_trt}")
        elif _version_tuple(local.trt_version) < _version_tuple(built_trt):
            problems.append(
                f"it was built version-compatible with TensorRT {built_trt}, which runs on TensorRT "
                f">= {built_trt} (later majors included), but TensorRT {local.trt_version} is installed"
            )
        elif lean_excluded and not same_version:
            lean_runtime_of = built_trt
            if not lean_runtime_available:
                problems.append(
                    f"it was built version-compatible with the lean runtime excluded, so TensorRT "
                    f"{local.trt_version} can run it only after loading TensorRT {built_trt}'s lean runtime "
                    f"(pass lean_runtime_path='.../libnvinfer_lean.so' of {built_trt}, "
                    f"or install tensorrt=={built_trt})"
                )
    elif not same_version:
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
    warnings: list[str] = []
    if hardware == "none" and built_gpu != local.name and not config.get("same_cc_compatible"):
        warnings.append(
            f"{engine} was built on {built_gpu} and runs on {local.name} "
            f"(same compute capability {local.cc}); "
            "TensorRT allows it, but tactics were timed on the other GPU"
        )
    return LoadPlan(
        host_code_allowed=version_compatible and not lean_excluded,
        lean_runtime_of=lean_runtime_of,
        warnings=warnings,
    )


def host_code_setting(plan: LoadPlan, caller_allows: bool, engine: str = "engine.plan") -> bool:
    """The value for ``runtime.engine_host_code_allowed``: on exactly when the plan embeds a lean runtime.
    Such a plan runs code from the file in this process, so the caller must vouch for it (weightpack's own
    verification does, for engines it just built; a consumer passes ``engine_host_code_allowed=True``)."""
    if plan.host_code_allowed and not caller_allows:
        raise ModelLoadError(
            f"{engine} is version-compatible and embeds TensorRT's lean runtime (host code run from the "
            "plan); load it with engine_host_code_allowed=True if you trust the package"
        )
    return plan.host_code_allowed


def local_gpu(device_index: int, trt_version: str) -> LocalGPU:
    """The facts of CUDA device ``device_index`` (via torch) and the installed TensorRT."""
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return LocalGPU(
        trt_version=trt_version, cc=f"{major}.{minor}", name=torch.cuda.get_device_name(device_index)
    )
