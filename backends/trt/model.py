"""Model class for TensorRT packages: deserialize ``engine.plan`` after checking it fits this GPU."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import resolve_device
from backends.errors import DeviceUnavailableError, ModelLoadError
from backends.extras import require
from backends.trt import CONFIG_FILE, ENGINE_FILE
from backends.trt.compat import check_compatible, local_gpu


class TrtModel(PackageModel):
    """Runs a TensorRT engine with torch tensors as device buffers on the current CUDA stream."""

    backend = "trt"

    def __init__(self, engine: Any, context: Any, config: dict[str, Any], path: Path, device: str) -> None:
        self.engine = engine
        self.context = context
        self.config = config
        self.path = path
        self.device = device
        self.input_names = list(config["input_names"])
        self.output_names = list(config["output_names"])
        self.batch_range = (
            (config["static_batch_size"],) * 2
            if "static_batch_size" in config
            else (config["dynamic_batch_size_min"], config["dynamic_batch_size_max"])
        )

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cuda",
        engine_host_code_allowed: bool = False,
        **kwargs: Any,
    ) -> TrtModel:
        path = Path(model_name_or_path)
        config = json.loads(require_file(path, CONFIG_FILE, "trt").read_text())
        engine_path = require_file(path, ENGINE_FILE, "trt")
        device = resolve_device(device)
        if device == "cpu":
            raise DeviceUnavailableError("a TensorRT engine runs only on a CUDA device; pass device='cuda'")
        trt = require("tensorrt", "loading a TensorRT engine")
        index = int(device.split(":")[1])
        for note in check_compatible(config, local_gpu(index, trt.__version__), str(engine_path)):
            warnings.warn(note, stacklevel=2)
        import torch

        torch.cuda.set_device(index)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if config.get("version_compatible"):
            runtime.engine_host_code_allowed = bool(engine_host_code_allowed)
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise ModelLoadError(f"TensorRT {trt.__version__} could not deserialize {engine_path}")
        context = engine.create_execution_context()
        model = cls(engine, context, config, path, device)
        model._trt = trt
        return model

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        import torch

        trt = self._trt
        batch = next(iter(inputs.values())).shape[0]
        low, high = self.batch_range
        if not low <= batch <= high:
            raise ValueError(f"batch {batch} is outside the engine's profile [{low}, {high}]")
        stream = torch.cuda.current_stream(self.device)
        keep = []
        for name in self.input_names:
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            tensor = torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device, dtype).contiguous()
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed (see the TensorRT log)")
        stream.synchronize()
        return {name: t.cpu().numpy() for name, t in outputs.items()}

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    return torch.from_numpy(np.zeros(0, dtype=trt.nptype(dtype))).dtype
