"""Model class for TorchScript packages: ``torch.jit.load`` onto the device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.base import require_file
from backends.device import parse_device, resolve_device
from backends.errors import DeviceUnavailableError, ModelLoadError
from backends.torch.runtime import TorchModuleModel
from backends.torchscript import CONFIG_FILE, WEIGHTS_FILE


class TorchScriptModel(TorchModuleModel):
    """Runs ``model.pt``; inputs are passed positionally in ``torchscript_config.json``'s order."""

    backend = "torch-script"

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
