"""Model class for torch packages: rebuild the module with its factory, load the safetensors weights."""

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
from backends.torch import CONFIG_FILE, WEIGHTS_FILE
from backends.torch.common import call_factory


class TorchModel(PackageModel):
    """Runs the ``nn.Module`` that ``torch_config.json``'s factory builds, with the package's weights."""

    backend = "torch"

    def __init__(self, module: Any, config: dict[str, Any], path: Path, device: str) -> None:
        self.module = module
        self.config = config
        self.path = path
        self.device = device
        self.input_names: list[str] = list(config["input_names"])
        self.output_names: list[str] = list(config["output_names"])

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> TorchModel:
        from safetensors.torch import load_file

        from backends.registry import load_object

        path = Path(model_name_or_path)
        config = json.loads(require_file(path, CONFIG_FILE, "torch").read_text())
        weights = require_file(path, WEIGHTS_FILE, "torch")
        device = resolve_device(device)
        try:
            factory = load_object(config["factory"])
        except (ImportError, AttributeError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"{path / CONFIG_FILE} names factory {config.get('factory')!r}, "
                f"which cannot be imported: {exc}"
            ) from exc
        module = call_factory(factory, config.get("factory_kwargs", {}), str(path))
        try:
            module.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(
                f"{weights} does not fit the module {config['factory']} builds: {exc}"
            ) from exc
        module = module.eval().to(device)
        return cls(module, config, path, device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        import torch

        dtype = getattr(torch, self.config.get("dtype", "float32"))
        args = []
        for name in self.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device)
            args.append(tensor.to(dtype) if tensor.is_floating_point() else tensor)
        with torch.inference_mode():
            outputs = self.module(*args)
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return flatten_outputs(dict(zip(self.output_names, outputs, strict=True)))

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        return self.module, list(self.input_names), list(self.output_names)
