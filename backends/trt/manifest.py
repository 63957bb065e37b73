"""The ``trt-model-package-v1`` manifest, as a pure function of a recorded engine description.

The consumer (inference-models) parses ``machineSpecs`` by its ``type`` and silently skips a package whose
specs do not fit its ``machineType`` or whose ``driverVersion`` is not a version: a gpu-server needs
``{"type": "gpu-server-specs-v1", "driverVersion", "osVersion"}``, a Jetson
``{"type": "jetson-machine-specs-v1", "l4tVersion", "deviceName", "driverVersion"}``. So the facts are
gathered once (:func:`machine_facts`, the only part that reads the machine) and the manifest is built from
them by :func:`package_manifest`, which refuses rather than writes a manifest the consumer would skip.
The readers mirror the consumer's own runtime probe (``inference_models.runtime_introspection``).
"""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from backends.errors import ExportError
from backends.files import batch_fields
from backends.trt.spec import SPEC

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
NVIDIA_PROC_VERSION = Path("/proc/driver/nvidia/version")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


def package_manifest(engine: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an engine described by ``engine``: ``quantization``, ``batch`` ([min, opt, max]),
    ``static_batch`` (bool), ``trt_version``, ``same_cc_compatible``, ``version_compatible``,
    ``exclude_lean_runtime``, ``gpu`` ({name, cc, cuda_version}) and ``machine`` (:func:`machine_facts`).
    Raises ExportError naming the missing fact when the consumer could not use the result."""
    gpu, machine, batch = engine["gpu"], engine["machine"], engine["batch"]
    static = bool(engine.get("static_batch")) and batch[0] == batch[2]
    return {
        **SPEC.manifest_base(engine["quantization"]),
        **batch_fields(batch[0] if static else None),
        "minBatchSize": batch[0],
        "optBatchSize": batch[1],
        "maxBatchSize": batch[2],
        "cudaDeviceType": gpu["name"],
        "cudaDeviceCC": _version(gpu.get("cc"), "the GPU's compute capability"),
        "cudaVersion": _version(gpu.get("cuda_version"), "the CUDA version"),
        "trtVersion": _version(engine.get("trt_version"), "the TensorRT version"),
        "sameCCCompatible": bool(engine.get("same_cc_compatible")),
        "trtForwardCompatible": bool(engine.get("version_compatible")),
        "trtLeanRuntimeExcluded": bool(engine.get("exclude_lean_runtime")),
        "machineType": machine["type"],
        "machineSpecs": machine_specs(machine),
    }


def machine_specs(machine: dict[str, Any]) -> dict[str, Any]:
    """``machineSpecs`` for a ``gpu-server`` or a ``jetson``; the driver version is required for both."""
    driver = _version(machine.get("driver_version"), "the NVIDIA driver version")
    if machine["type"] == "jetson":
        return {
            "type": "jetson-machine-specs-v1",
            "l4tVersion": _version(machine.get("l4t_version"), "the Jetson L4T version"),
            "deviceName": _required(machine.get("device_name"), "the Jetson device name"),
            "driverVersion": driver,
        }
    if machine["type"] == "gpu-server":
        return {
            "type": "gpu-server-specs-v1",
            "driverVersion": driver,
            "osVersion": _required(machine.get("os_version"), "the OS version"),
        }
    raise ExportError(f"machine type {machine['type']!r} is not accepted (accepted: gpu-server, jetson)")


def _required(value: Any, what: str) -> str:
    if value is None or not str(value).strip():
        raise ExportError(
            f"cannot write the TensorRT manifest: {what} is unknown, and the consumer silently skips "
            "packages without it"
        )
    return str(value).strip()


def _version(value: Any, what: str) -> str:
    text = _required(value, what)
    if not _VERSION.match(text):
        raise ExportError(f"cannot write the TensorRT manifest: {what} {text!r} is not a version (like 12.4)")
    return text


def machine_facts() -> dict[str, Any]:
    """What this machine is, for :func:`machine_specs`: type, OS, driver and (Jetson) L4T and model."""
    l4t = l4t_version()
    jetson = l4t is not None or TEGRA_RELEASE.exists()
    return {
        "type": "jetson" if jetson else "gpu-server",
        "os_version": os_version(),
        "driver_version": driver_version() or (l4t if jetson else None),
        "l4t_version": l4t,
        "device_name": jetson_model() if jetson else None,
    }


def l4t_version(path: Path = TEGRA_RELEASE) -> str | None:
    """``36.4.3`` from ``# R36 (release), REVISION: 4.3, ...``, as the consumer reads it."""
    try:
        header = path.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    match = re.search(r"R(\d+).*REVISION:\s*([\d.]+)", header)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def jetson_model(path: Path = DEVICE_TREE_MODEL) -> str | None:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip().splitlines()[0] or None
    except (OSError, IndexError):
        return None


def driver_version() -> str | None:
    """The NVIDIA driver version: NVML, else nvidia-smi, else ``/proc/driver/nvidia/version``; or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # pynvml missing or NVML unavailable: fall back to nvidia-smi
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        match = re.search(r"\b(\d+\.\d+(\.\d+)?)\b", NVIDIA_PROC_VERSION.read_text().splitlines()[0])
        return match.group(1) if match else None
    except (OSError, IndexError):
        return None


def os_version() -> str:
    """``ubuntu-22.04``: the consumer's own spelling (``NAME-VERSION_ID``, lower case)."""
    try:
        info = platform.freedesktop_os_release()
        return f"{info['NAME']}-{info['VERSION_ID']}".lower()
    except (OSError, KeyError, AttributeError):
        return platform.platform().lower()
