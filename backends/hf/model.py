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
from backends.outputs import flatten_outputs

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
        import torch

        feed = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
            for k, v in inputs.items()
            if k in self.input_names
        }
        with torch.inference_mode():
            outputs = self._forward(feed)
        return flatten_outputs({k: v for k, v in outputs.items() if v is not None})

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

        names = [n for n in TEXT_INPUTS if n in self.input_names]
        sample = {n: torch.ones(1, 4, dtype=torch.long) for n in names}
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
