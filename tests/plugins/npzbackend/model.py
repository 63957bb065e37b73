"""Runtime and reference classes of the npz backend: ``y = x @ w + b``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file


class NpzLinear(PackageModel):
    backend = "npz"
    file_name = "weights.npz"

    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        self.w, self.b = w.astype(np.float32), b.astype(np.float32)

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any):
        with np.load(require_file(Path(model_name_or_path), cls.file_name, cls.backend)) as data:
            return cls(data["w"], data["b"])

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return {"y": inputs["x"].astype(np.float32) @ self.w + self.b}


class LinearReference(NpzLinear):
    """The upstream model: the same layer, read from the upstream's ``linear.npz``."""

    file_name = "linear.npz"
