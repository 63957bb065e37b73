"""trt backend: a TensorRT engine built from the ONNX export with the TensorRT Python API.

Files: ``engine.plan`` (the serialized engine) and ``trt_config.json`` (``static_batch_size`` or
``dynamic_batch_size_min/opt/max``, input/output names and shapes, the TensorRT version, GPU name and
compute capability the engine was built on, precision, compatibility flags). Manifest:
``trt-model-package-v1`` with the batch fields, ``minBatchSize``/``optBatchSize``/``maxBatchSize``,
``quantization``, ``cudaDeviceType``, ``cudaDeviceCC``, ``cudaVersion``, ``trtVersion``,
``sameCCCompatible``, ``trtForwardCompatible``, ``trtLeanRuntimeExcluded``, ``machineType`` and
``machineSpecs``. ``tensorrt`` comes with the ``gpu`` extra and is imported only when used.
"""

ENGINE_FILE = "engine.plan"
CONFIG_FILE = "trt_config.json"
