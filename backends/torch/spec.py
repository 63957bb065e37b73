"""The torch backend's declaration: names, options, tolerances, streams, extras, version key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from backends.options import BackendOptions
from backends.spec import BackendSpec, Tolerance


@dataclass(frozen=True)
class TorchOptions(BackendOptions):
    """``[backends.torch]``: a state dict plus the factory that rebuilds the module."""

    quantization: Literal["fp32", "fp16", "bf16"] = "fp32"
    factory: str | None = None
    """``module:function`` returning the ``nn.Module``; default: the reference's ``torch_factory()``."""
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory; string values may use ``{variant}``."""
    static_batch_size: int | None = None
    """Build for this batch size only (default: any batch)."""
    copy_files: list[str] | None = None
    """Globs of upstream files to ship; default: every non-weight file."""

    positive: ClassVar[tuple[str, ...]] = ("static_batch_size",)


SPEC = BackendSpec(
    name="torch",
    package_type="torch-model-package-v1",
    exporter="backends.torch.exporter:export",
    options=TorchOptions,
    model_classes={"*": "backends.torch.model:TorchModel"},
    tolerance=Tolerance(1e-5, 1e-5),
    torch_stream=True,
    extras={"torch": ("torch", "torch"), "safetensors": ("torch", "safetensors")},
    version_libraries=("torch", "safetensors"),
    traces_reference=True,
)
