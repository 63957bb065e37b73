"""Model class for torch packages: rebuild the module with its factory, load the safetensors weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.base import require_file
from backends.device import resolve_device
from backends.errors import ModelLoadError
from backends.torch import CONFIG_FILE, WEIGHTS_FILE
from backends.torch.common import call_factory
from backends.torch.runtime import TorchModuleModel


class TorchModel(TorchModuleModel):
    """Runs the ``nn.Module`` that ``torch_config.json``'s factory builds, with the package's weights."""

    backend = "torch"

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> TorchModel:
        from safetensors.torch import load_file

        from backends.factories import load_factory

        path = Path(model_name_or_path)
        config = json.loads(require_file(path, CONFIG_FILE, "torch").read_text())
        weights = require_file(path, WEIGHTS_FILE, "torch")
        device = resolve_device(device)
        try:
            factory = load_factory(config["factory"])  # a package names code: only a model's (factories.py)
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
