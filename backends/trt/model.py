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
from backends.errors import BackendError, DeviceUnavailableError, ModelLoadError
from backends.extras import require
from backends.trt import CONFIG_FILE, ENGINE_FILE
from backends.trt.compat import host_code_setting, load_plan, local_gpu
from backends.trt.shapes import EngineInputError, feed_problem, refused_shape, shape_problem
from backends.trt.streams import dedicated_stream


class TrtExecutionError(BackendError):
    """``execute_async_v3`` returned False: a failed check of this package (exit 1), named with the input
    shapes it was given, instead of a plain RuntimeError that aborts the whole pack."""


class TrtModel(PackageModel):
    """Runs a TensorRT engine with torch tensors as device buffers on its own non-default CUDA stream
    (``self.stream``; the latency timers record their events on it)."""

    backend = "trt"

    def __init__(
        self, engine: Any, context: Any, config: dict[str, Any], path: Path, device: str, stream: Any = None
    ) -> None:
        self.engine = engine
        self.context = context
        self.config = config
        self.path = path
        self.device = device
        self.stream = stream
        self.input_names = list(config["input_names"])
        self.output_names = list(config["output_names"])
        self.profiles = {i["name"]: (i.get("min"), i.get("max")) for i in config.get("inputs", [])}
        self.load_facts: dict[str, Any] = {}

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cuda",
        engine_host_code_allowed: bool = False,
        lean_runtime_path: str | None = None,
        **kwargs: Any,
    ) -> TrtModel:
        """``engine_host_code_allowed``: trust a version-compatible plan's embedded lean runtime (host
        code run from the file); ``lean_runtime_path``: the building TensorRT's ``libnvinfer_lean.so``
        for a version-compatible plan built with the lean runtime excluded."""
        path = Path(model_name_or_path)
        config = json.loads(require_file(path, CONFIG_FILE, "trt").read_text())
        engine_path = require_file(path, ENGINE_FILE, "trt")
        device = resolve_device(device)
        if device == "cpu":
            raise DeviceUnavailableError("a TensorRT engine runs only on a CUDA device; pass device='cuda'")
        trt = require("tensorrt", "loading a TensorRT engine")
        index = int(device.split(":")[1])
        plan = load_plan(
            config,
            local_gpu(index, trt.__version__),
            str(engine_path),
            lean_runtime_available=bool(lean_runtime_path),
        )
        host_code = host_code_setting(plan, engine_host_code_allowed, str(engine_path))
        for note in plan.warnings:
            warnings.warn(note, stacklevel=2)
        import torch

        torch.cuda.set_device(index)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if plan.lean_runtime_of:
            runtime = runtime.load_runtime(str(lean_runtime_path))
        runtime.engine_host_code_allowed = host_code
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise ModelLoadError(f"TensorRT {trt.__version__} could not deserialize {engine_path}")
        context = engine.create_execution_context()
        model = cls(engine, context, config, path, device, dedicated_stream(device))
        model._trt = trt
        model.load_facts = {
            "engine_host_code_allowed": host_code,
            "lean_runtime_of": plan.lean_runtime_of,
            "trt_version": trt.__version__,
        }
        return model

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Enqueue one batch on ``self.stream`` and return the output device tensors (no host copy)."""
        import torch

        trt = self._trt
        missing = feed_problem(self.input_names, list(inputs))
        if missing:
            raise EngineInputError(missing)
        keep = []
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                array = np.ascontiguousarray(inputs[name])
                low, high = self.profiles.get(name, (None, None))
                problem = shape_problem(name, array.shape, low, high)
                if problem:
                    raise EngineInputError(problem)
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                tensor = torch.from_numpy(array).to(self.device, dtype, non_blocking=False).contiguous()
                keep.append(tensor)
                if not self.context.set_input_shape(name, tuple(tensor.shape)):
                    raise EngineInputError(refused_shape(name, tensor.shape, low, high))
                self.context.set_tensor_address(name, tensor.data_ptr())
            outputs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                shapes = {n: list(t.shape) for n, t in zip(self.input_names, keep, strict=True)}
                raise TrtExecutionError(
                    f"TensorRT execute_async_v3 failed on {self.device} for inputs {shapes} (see the "
                    "TensorRT log above)"
                )
        self._keep = keep  # inputs must live until the stream has consumed them
        return outputs

    def fetch(self, outputs: dict[str, Any]) -> Tensors:
        """Wait for ``self.stream`` and copy the outputs to the host."""
        self.stream.synchronize()
        self._keep = []
        return {name: t.cpu().numpy() for name, t in outputs.items()}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self.fetch(self.run(inputs))

    def synchronize(self) -> None:
        self.stream.synchronize()


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    return torch.from_numpy(np.zeros(0, dtype=trt.nptype(dtype))).dtype
