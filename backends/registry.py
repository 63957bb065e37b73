"""The backend table: wire name -> where its exporter and default model classes live.

Modules are imported only when a backend is used, so a backend whose library is missing (TensorRT on a
laptop) never breaks ``import backends``; using it raises MissingExtraError naming the extra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from backends.base import Exporter, PackageModel


@dataclass(frozen=True)
class BackendSpec:
    """Static facts about one backend."""

    name: str
    """Name in recipes and on the CLI (``hf``, ``onnx``, ``torch``, ``torch-script``, ``trt``)."""
    wire_name: str
    """Name the registry uses (``hugging-face`` for ``hf``)."""
    exporter: str
    """``module:function`` of the exporter."""
    model_classes: dict[str, str] = field(default_factory=dict)
    """Default model class per task; ``*`` applies to any task."""

    def load_exporter(self) -> Exporter:
        return load_object(self.exporter)

    def default_model_class(self, task: str) -> str | None:
        return self.model_classes.get(task) or self.model_classes.get("*")


BACKENDS: dict[str, BackendSpec] = {
    "hf": BackendSpec(
        name="hf",
        wire_name="hugging-face",
        exporter="backends.hf.exporter:export",
        model_classes={
            "embedding": "backends.hf.model:HFEmbeddingModel",
            "classification": "backends.hf.model:HFTaskModel",
            "multi-label-classification": "backends.hf.model:HFTaskModel",
            "object-detection": "backends.hf.model:HFTaskModel",
            "semantic-segmentation": "backends.hf.model:HFTaskModel",
            "instance-segmentation": "backends.hf.model:HFTaskModel",
            "depth-estimation": "backends.hf.model:HFTaskModel",
            "*": "backends.hf.model:HFModel",
        },
    ),
    "onnx": BackendSpec(
        name="onnx",
        wire_name="onnx",
        exporter="backends.onnx.exporter:export",
        model_classes={"*": "backends.onnx.model:OnnxModel"},
    ),
    "torch": BackendSpec(
        name="torch",
        wire_name="torch",
        exporter="backends.torch.exporter:export",
        model_classes={"*": "backends.torch.model:TorchModel"},
    ),
    "torch-script": BackendSpec(
        name="torch-script",
        wire_name="torch-script",
        exporter="backends.torchscript.exporter:export",
        model_classes={"*": "backends.torchscript.model:TorchScriptModel"},
    ),
    "trt": BackendSpec(
        name="trt",
        wire_name="trt",
        exporter="backends.trt.exporter:export",
        model_classes={"*": "backends.trt.model:TrtModel"},
    ),
}


def get_backend(name: str) -> BackendSpec:
    """Look a backend up by its recipe/CLI name; KeyError lists the accepted names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend '{name}' (accepted: {', '.join(sorted(BACKENDS))})") from None


def load_object(ref: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted). Used for exporters and user model classes."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"'{ref}' is not of the form 'module:Name'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_model_class(ref: str) -> type[PackageModel]:
    """Import a model class; anything with a ``from_pretrained`` classmethod and ``infer`` qualifies."""
    cls = load_object(ref)
    if not hasattr(cls, "from_pretrained"):
        raise TypeError(f"'{ref}' has no from_pretrained(); it cannot be a model class")
    return cls
