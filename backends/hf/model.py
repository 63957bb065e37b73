"""Model classes for HF packages, built on transformers' Auto classes.

They double as the upstream reference: loaded from the fetched snapshot at fp32 on the CPU, they produce
the outputs every other backend is compared against, and ``torch_module()`` gives exporters the very same
computation (pooling and normalisation included) to trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import resolve_device
from backends.errors import ModelLoadError
from backends.outputs import fetch_all, flatten_outputs, keep_on_device

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class HFModel(PackageModel):
    """Any transformers model loadable with ``AutoModel``; outputs are the model output's named fields."""

    backend = "hf"
    auto_class = "AutoModel"

    def __init__(self, model: Any, path: Path, device: str) -> None:
        self.model = model
        self.path = path
        self.device = device
        self.input_names = _accepted_inputs(model)

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> HFModel:
        import transformers

        path = Path(model_name_or_path)
        require_file(path, "config.json", "hf")
        device = resolve_device(device)
        auto = getattr(transformers, kwargs.get("auto_class") or cls.auto_class)
        try:
            extra = {"dtype": kwargs["dtype"]} if kwargs.get("dtype") else {}
            model = auto.from_pretrained(str(path), local_files_only=True, **extra)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"transformers could not load the package at {path}: {exc}") from exc
        model.eval().to(device)
        return cls(model, path, device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self.fetch(self.run(inputs))

    def fetch(self, outputs: dict[str, Any]) -> Tensors:
        return fetch_all(outputs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Outputs stay on the model's device; :meth:`fetch` copies them to the host."""
        import torch

        feed = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
            for k, v in inputs.items()
            if k in self.input_names
        }
        with torch.inference_mode():
            outputs = self._forward(feed)
        return flatten_outputs({k: v for k, v in outputs.items() if v is not None}, convert=keep_on_device)

    def _forward(self, feed: dict[str, Any]) -> dict[str, Any]:
        result = self.model(**feed, return_dict=True)
        return {k: v for k, v in result.items() if hasattr(v, "detach")}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        """A module taking the model's text inputs positionally and returning its outputs as a tuple."""
        import torch

        names = [n for n in (*TEXT_INPUTS, "pixel_values") if n in self.input_names]
        sample = {n: torch.ones(1, 4, dtype=torch.long) for n in names if n != "pixel_values"}
        if "pixel_values" in names:
            size = getattr(self.model.config, "image_size", 224)
            size = size if isinstance(size, int) else 224
            channels = getattr(self.model.config, "num_channels", 3)
            sample["pixel_values"] = torch.zeros(1, channels, size, size, device=self.device)
        sample = {k: v.to(self.device) for k, v in sample.items()}
        with torch.inference_mode():
            output_names = list(self._forward(sample))
        owner = self

        class _Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = owner.model

            def forward(self, *args: Any) -> tuple[Any, ...]:
                outputs = owner._forward(dict(zip(names, args, strict=True)))
                return tuple(outputs[n] for n in output_names)

        return _Wrapper().eval(), names, output_names

    def torch_factory(self) -> tuple[str, dict[str, Any]]:
        """How the torch backend rebuilds :meth:`torch_module` from the package's ``config.json``."""
        return "backends.hf.model:module_from_config", {
            "model_class": f"{type(self).__module__}:{type(self).__qualname__}",
            "auto_class": type(self.model).__name__,
        }


def module_from_config(package_dir: str, model_class: str, auto_class: str) -> Any:
    """The torch backend's factory for HF models: an untrained ``auto_class`` built from ``config.json``,
    wrapped by ``model_class.torch_module()`` (pooling and normalisation included)."""
    import transformers

    from backends.registry import load_object

    config = transformers.AutoConfig.from_pretrained(package_dir, local_files_only=True)
    cls = getattr(transformers, auto_class)
    model = (cls.from_config(config) if hasattr(cls, "from_config") else cls._from_config(config)).eval()
    owner = load_object(model_class)(model, Path(package_dir), "cpu")
    return owner.torch_module()[0]


# task -> transformers Auto class; classification picks image or text by the config (see _auto_for_task).
TASK_AUTO_CLASSES = {
    "object-detection": "AutoModelForObjectDetection",
    "semantic-segmentation": "AutoModelForSemanticSegmentation",
    "instance-segmentation": "AutoModelForUniversalSegmentation",
    "depth-estimation": "AutoModelForDepthEstimation",
    "embedding": "AutoModel",
}


def auto_class_for_task(task: str, path: Path) -> str:
    """The Auto class for ``task``; ``classification`` is image classification when the snapshot has an
    image processor (or a vision config) and sequence classification otherwise."""
    if task in ("classification", "multi-label-classification"):
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
        vision = (path / "preprocessor_config.json").is_file() or "num_channels" in config
        return "AutoModelForImageClassification" if vision else "AutoModelForSequenceClassification"
    return TASK_AUTO_CLASSES.get(task, "AutoModel")


class HFTaskModel(HFModel):
    """An HF model loaded with the Auto class of the recipe's task (``task=`` keyword, else the package's
    ``weightpack_task`` file, else the config's ``architectures`` entry decides)."""

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> HFModel:
        path = Path(model_name_or_path)
        if not kwargs.get("auto_class"):
            task = kwargs.get("task") or _architecture_task(path)
            kwargs["auto_class"] = auto_class_for_task(task, path)
        return super().from_pretrained(path, device=device, **kwargs)


def _architecture_task(path: Path) -> str:
    """Guess the task from ``config.json``'s ``architectures`` (``...ForImageClassification`` ...)."""
    config_path = path / "config.json"
    archs = json.loads(config_path.read_text()).get("architectures") or [] if config_path.is_file() else []
    name = archs[0] if archs else ""
    for suffix, task in (
        ("ForImageClassification", "classification"),
        ("ForSequenceClassification", "classification"),
        ("ForObjectDetection", "object-detection"),
        ("ForSemanticSegmentation", "semantic-segmentation"),
        ("ForDepthEstimation", "depth-estimation"),
    ):
        if name.endswith(suffix):
            return task
    return "embedding"


class HFEmbeddingModel(HFModel):
    """A sentence-transformers snapshot: transformer, pooling (``1_Pooling``) and optional normalisation.

    Outputs ``last_hidden_state`` and ``sentence_embedding``, the vector sentence-transformers returns.
    """

    def __init__(self, model: Any, path: Path, device: str) -> None:
        super().__init__(model, path, device)
        self.pooling = _pooling_mode(path)
        self.normalize = _has_normalize(path)

    def _forward(self, feed: dict[str, Any]) -> dict[str, Any]:
        import torch

        hidden = self.model(**feed, return_dict=True).last_hidden_state
        mask = feed.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return {"last_hidden_state": hidden, "sentence_embedding": pooled}


def _accepted_inputs(model: Any) -> set[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    return {n for n in TEXT_INPUTS if n in params} | {"pixel_values"} & set(params)


def _pooling_mode(path: Path) -> str:
    config_path = path / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return "mean"
    config = json.loads(config_path.read_text())
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_max_tokens"):
        return "max"
    return "mean"


def _has_normalize(path: Path) -> bool:
    modules_path = path / "modules.json"
    if not modules_path.is_file():
        return False
    modules = json.loads(modules_path.read_text())
    return any(str(m.get("type", "")).endswith("Normalize") for m in modules)
