"""The hf backend's declaration: names, options, tolerances, streams, extras, version key."""

from __future__ import annotations

from dataclasses import dataclass

from backends.options import BackendOptions
from backends.spec import BackendSpec, Tolerance


@dataclass(frozen=True)
class HFOptions(BackendOptions):
    """``[backends.hf]``: ``quantization`` is recorded in the manifest (the snapshot is copied as is)."""

    exclude: list[str] | None = None
    """Globs of snapshot files to leave out; default: ``backends.hf.exporter.DEFAULT_EXCLUDE``."""


_TASK_CLASS = "backends.hf.model:HFTaskModel"

SPEC = BackendSpec(
    name="hf",
    wire_name="hugging-face",
    manifest_type="hf",
    package_type="hf-model-package-v1",
    exporter="backends.hf.exporter:export",
    options=HFOptions,
    model_classes={
        "embedding": "backends.hf.model:HFEmbeddingModel",
        "classification": _TASK_CLASS,
        "multi-label-classification": _TASK_CLASS,
        "object-detection": _TASK_CLASS,
        "semantic-segmentation": _TASK_CLASS,
        "instance-segmentation": _TASK_CLASS,
        "depth-estimation": _TASK_CLASS,
        "*": "backends.hf.model:HFModel",
    },
    tolerance=Tolerance(1e-5, 1e-5),
    torch_stream=True,
    extras={"torch": ("torch", "torch"), "safetensors": ("torch", "safetensors")},
    version_libraries=("torch", "transformers", "safetensors"),
    reference=True,
)
