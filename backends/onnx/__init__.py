"""ONNX backend: ``weights.onnx`` run by onnxruntime (CPU, CUDA or TensorRT execution providers).

Files: ``weights.onnx`` (``weights.onnx.data`` for external data over 2 GB) plus the upstream's non-weight
files (tokenizer, configs) so a consumer can pre-process. Manifest: ``{"type": "onnx-model-package-v1",
"backendType": "onnx", "quantization", "opset", "dynamicBatchSize": true | "staticBatchSize": N}``.
"""

WEIGHTS_FILE = "weights.onnx"
