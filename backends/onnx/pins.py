"""Which onnxruntime-gpu and TensorRT a GPU install gets: the build table of onnxruntime-gpu on PyPI and
the gpu extra that matches the CUDA build of torch (pure functions; ``pyproject.toml``'s ``gpu`` and
``gpu-cu12`` extras pin within one row of the table, and tests/unit/test_ort_install.py holds them to it).

Read from the wheels themselves (``capi/build_and_package_info.py`` and the DT_NEEDED entries of
``capi/libonnxruntime_providers_tensorrt.so``): onnxruntime-gpu 1.22-1.26 are CUDA 12 builds, 1.27-1.31
CUDA 13 builds, and the TensorRT provider of every one of them opens ``libnvinfer.so.10``.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class OrtGpuBuild:
    """A run of onnxruntime-gpu releases on PyPI built alike: the CUDA major they were built for
    (``capi/build_and_package_info.py``) and the TensorRT major their TensorRT provider opens
    (``libonnxruntime_providers_tensorrt.so`` DT_NEEDED ``libnvinfer.so.N``), read from each wheel."""

    first: str
    last: str
    cuda: int
    trt: int
    extra: str
    """The weightpack extra that installs this build, with TensorRT of the same majors."""


ORT_GPU_BUILDS = (
    OrtGpuBuild("1.22.0", "1.26.0", cuda=12, trt=10, extra="gpu-cu12"),
    OrtGpuBuild("1.27.0", "1.31.1", cuda=13, trt=10, extra="gpu"),
)
DEFAULT_GPU_EXTRA = "gpu"


def gpu_extra(torch_cuda: str | None) -> tuple[str, str | None]:
    """``(extra, warning)``: the gpu extra for a torch built with CUDA ``torch_cuda`` (``"13.0"``), so
    onnxruntime-gpu loads the same CUDA and cuDNN majors as torch. A torch without CUDA, or of a CUDA major
    no onnxruntime-gpu on PyPI is built for, gets the default extra and a warning saying so."""
    major = int(torch_cuda.split(".")[0]) if torch_cuda and torch_cuda.split(".")[0].isdigit() else None
    for build in ORT_GPU_BUILDS:
        if build.cuda == major:
            return build.extra, None
    newest = ORT_GPU_BUILDS[-1]
    if major is None:
        return DEFAULT_GPU_EXTRA, None
    return DEFAULT_GPU_EXTRA, (
        f"torch is built for CUDA {torch_cuda}, and no onnxruntime-gpu on PyPI is (CUDA "
        f"{', '.join(str(b.cuda) for b in ORT_GPU_BUILDS)}): weightpack[{DEFAULT_GPU_EXTRA}] installs the "
        f"CUDA {newest.cuda} build; install a torch for CUDA {newest.cuda} to run both on the GPU"
    )


def installed_torch_cuda() -> str | None:
    """The CUDA version of the installed torch from its metadata's local version (``2.11.0+cu130`` ->
    ``13.0``), without importing torch; None when it does not say (a CPU build, or PyPI's default wheel)."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    match = re.search(r"\+cu(\d+)(\d)$", version)
    return f"{match.group(1)}.{match.group(2)}" if match else None
