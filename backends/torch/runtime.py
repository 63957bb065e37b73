"""What the torch and torch-script model classes share: run a module on named inputs, positionally."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors
from backends.outputs import fetch_all, flatten_outputs, keep_on_device
from backends.torch.common import module_args


class TorchModuleModel(PackageModel):
    """A loaded ``nn.Module`` (eager or TorchScript) plus the package config naming its inputs and outputs.

    Subclasses only differ in how ``from_pretrained`` obtains the module; inference, synchronisation and
    handing the module to exporters are the same, so they live here once.
    """

    def __init__(self, module: Any, config: dict[str, Any], path: Path, device: str) -> None:
        self.module = module
        self.config = config
        self.path = path
        self.device = device
        self.input_names: list[str] = list(config["input_names"])
        self.output_names: list[str] = list(config["output_names"])

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self.fetch(self.run(inputs))

    def fetch(self, outputs: dict[str, Any]) -> Tensors:
        return fetch_all(outputs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Outputs stay on the model's device; :meth:`fetch` copies them to the host."""
        import torch

        dtype = getattr(torch, self.config.get("dtype", "float32"))

        def to_tensor(array: np.ndarray) -> Any:
            tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
            return tensor.to(dtype) if tensor.is_floating_point() else tensor

        args = module_args(self.module, [inputs[name] for name in self.input_names], to_tensor)
        with torch.inference_mode():
            outputs = self.module(*args)
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return flatten_outputs(dict(zip(self.output_names, outputs, strict=True)), convert=keep_on_device)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        return self.module, list(self.input_names), list(self.output_names)
