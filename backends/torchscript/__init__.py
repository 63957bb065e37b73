"""torch-script backend: a traced (default) or scripted module in ``model.pt``.

Files: ``model.pt`` (``torch.jit.save``), ``torchscript_config.json`` (``input_names``, ``output_names``,
``method``, ``dtype``; the same JSON is also inside ``model.pt`` as the extra file ``weightpack.json``) and
the upstream's non-weight files. Manifest: ``{"type": "torch-script-model-package-v1", "backendType":
"torch-script", "quantization", "supportedDeviceTypes", "torchVersion", "torchVisionVersion", batch fields}``.
"""

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "torchscript_config.json"
