"""Model class for TorchScript packages: ``torch.jit.load`` onto the device."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import parse_device, resolve_device
from backends.errors import DeviceUnavailableError, ModelLoadError
from backends.outputs import flatten_outputs
from backends.torchscript import CONFIG_FILE, WEIGHTS_FILE


class TorchScriptModel(PackageModel):
    """Runs ``model.pt``; inputs are passed positionally in ``torchscript_config.json``'s order."""

    backend = "torch-script"

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
    ) -> TorchScriptModel:
        import torch

        path = Path(model_name_or_path)
        weights = require_file(path, WEIGHTS_FILE, "torch-script")
        device = resolve_device(device)
        extra = {"weightpack.json": ""}
        try:
            module = torch.jit.load(str(weights), map_location=device, _extra_files=extra)
        except RuntimeError as exc:
            raise ModelLoadError(f"torch.jit.load could not load {weights}: {exc}") from exc
        config_path = path / CONFIG_FILE
        text = config_path.read_text() if config_path.is_file() else extra["weightpack.json"]
        if not text:
            raise ModelLoadError(
                f"{path} has neither {CONFIG_FILE} nor weightpack.json inside {WEIGHTS_FILE}"
            )
        config = json.loads(text)
        supported = kwargs.get("supported_device_types") or config.get("supported_device_types")
        if supported and parse_device(device)[0] not in supported:
            raise DeviceUnavailableError(f"{weights} supports only {supported}, not {device}")
        return cls(module.eval(), config, path, device)

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
