"""HuggingFace backend: a transformers snapshot (config, safetensors, tokenizer files) as the package.

Files: the snapshot's ``config.json``, ``*.safetensors`` (``.bin`` weights converted), tokenizer/processor
files and a sentence-transformers layout when present (``modules.json``, ``1_Pooling/config.json``).
Manifest: ``{"type": "hf-model-package-v1", "backendType": "hf", "quantization": ...}``.
"""
