"""Everything weightpack needs to know about the npz backend, in its own folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backends.options import BackendOptions
from backends.spec import BackendSpec, Tolerance


@dataclass(frozen=True)
class NpzOptions(BackendOptions):
    quantization: Literal["fp32", "fp16"] = "fp32"
    compressed: bool = False


SPEC = BackendSpec(
    name="npz",
    wire_name="numpy-npz",
    manifest_type="npz",
    package_type="npz-model-package-v1",
    exporter="npzbackend.exporter:export",
    options=NpzOptions,
    model_classes={"*": "npzbackend.model:NpzLinear"},
    tolerance=Tolerance(2e-4, 3e-4),
    version_libraries=("numpy",),
)
