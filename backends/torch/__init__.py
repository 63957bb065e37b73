"""torch backend: a state dict in ``model.safetensors`` plus ``torch_config.json`` naming the factory.

Files: ``model.safetensors`` (the module's ``state_dict()``), ``torch_config.json`` (``factory``:
``module:function`` returning the ``nn.Module``, ``factory_kwargs``, ``input_names``, ``output_names``,
``dtype``) and the upstream's non-weight files (a factory may read ``config.json`` from the package: it is
given ``package_dir=`` when its signature takes it). Manifest: ``{"type": "torch-model-package-v1",
"backendType": "torch", "quantization", "dynamicBatchSize": true | "staticBatchSize": N}``.
"""

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "torch_config.json"
