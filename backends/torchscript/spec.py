"""The torch-script backend's declaration: names, options, tolerances, streams, extras, version key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from backends.options import BackendOptions
from backends.spec import BackendSpec, Tolerance


@dataclass(frozen=True)
class TorchScriptOptions(BackendOptions):
    """``[backends.torch-script]``: a traced (default) or scripted module."""

    quantization: Literal["fp32", "fp16", "bf16"] = "fp32"
    method: Literal["trace", "script"] = "trace"
    """``torch.jit.trace`` with the sample inputs, or ``torch.jit.script`` the module's code."""
    freeze: bool = False
    """``torch.jit.freeze`` the compiled module (inlines weights; CPU-only constants stay on the CPU)."""
    supported_device_types: list[str] = field(default_factory=lambda: ["cpu", "cuda"])
    """Device types the package declares it runs on."""
    static_batch_size: int | None = None
    """Build for this batch size only (default: any batch)."""
    copy_files: list[str] | None = None
    """Globs of upstream files to ship."""

    positive: ClassVar[tuple[str, ...]] = ("static_batch_size",)


SPEC = BackendSpec(
    name="torch-script",
    package_type="torch-script-model-package-v1",
    exporter="backends.torchscript.exporter:export",
    options=TorchScriptOptions,
    model_classes={"*": "backends.torchscript.model:TorchScriptModel"},
    tolerance=Tolerance(1e-5, 1e-5),
    torch_stream=True,
    extras={"torch": ("torch", "torch")},
    version_libraries=("torch", "torchvision"),
    traces_reference=True,
)
