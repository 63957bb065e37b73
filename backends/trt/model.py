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
from backends.errors import BackendError, DeviceUnavailableError
from backends.extras import require
from backends.trt import CONFIG_FILE, ENGINE_FILE
from backends.trt.compat import host_code_setting, load_plan, local_gpu
from backends.trt.dtypes import torch_dtype
from backends.trt.engine import deserialize, execution_context
from backends.trt.outputs import OutputBuffers, make_allocator, needs_allocator
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
        self._trt: Any = None
        self._late: tuple[OutputBuffers, Any] | None = None

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
        engine = deserialize(
            trt, engine_path.read_bytes(), engine=engine_path, host_code_allowed=host_code,
            lean_runtime_path=lean_runtime_path if plan.lean_runtime_of else None,
        )  # fmt: skip
        context = execution_context(engine, engine_path)
        model = cls(engine, context, config, path, device, dedicated_stream(device))
        model._trt = trt
        model.load_facts = {
            "engine_host_code_allowed": host_code,
            "lean_runtime_of": plan.lean_runtime_of,
            "trt_version": trt.__version__,
        }
        return model

    def stage(self, inputs: Mapping[str, np.ndarray]) -> StagedInputs:
        """Check the feed against the engine's profile and copy it to the device on ``self.stream``. The
        latency harness calls this before its start event (:mod:`bench.cuda_streams`), so device time is
        the engine's work and not this pageable host-to-device copy; :meth:`run` stages a plain feed
        itself."""
        import torch

        missing = feed_problem(self.input_names, list(inputs))
        if missing:
            raise EngineInputError(missing)
        staged = StagedInputs()
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                array = np.ascontiguousarray(inputs[name])
                low, high = self.profiles.get(name, (None, None))
                problem = shape_problem(name, array.shape, low, high)
                if problem:
                    raise EngineInputError(problem)
                dtype = torch_dtype(self.engine.get_tensor_dtype(name), name)
                staged[name] = torch.from_numpy(array).to(self.device, dtype, non_blocking=False).contiguous()
        return staged

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Enqueue one batch on ``self.stream`` and return the output device tensors (no host copy).
        ``inputs``: arrays, or what :meth:`stage` returned."""
        import torch

        staged = inputs if isinstance(inputs, StagedInputs) else self.stage(inputs)
        with torch.cuda.stream(self.stream):
            for name in self.input_names:
                tensor = staged[name]
                if not self.context.set_input_shape(name, tuple(tensor.shape)):
                    low, high = self.profiles.get(name, (None, None))
                    raise EngineInputError(refused_shape(name, tensor.shape, low, high))
                self.context.set_tensor_address(name, tensor.data_ptr())
            outputs, late = self._bind_outputs()
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                shapes = {n: list(staged[n].shape) for n in self.input_names}
                raise TrtExecutionError(
                    f"TensorRT execute_async_v3 failed on {self.device} for inputs {shapes} (see the "
                    "TensorRT log above)"
                )
            if late is not None:  # data-dependent shapes: known once the engine has run
                self.stream.synchronize()
                outputs.update({name: late.tensor(name) for name in late.dtypes})
        self._keep = list(staged.values())  # inputs must live until the stream has consumed them
        return outputs

    def _bind_outputs(self) -> tuple[dict[str, Any], OutputBuffers | None]:
        """Output tensors of known shape, allocated now; the others get an output allocator
        (:mod:`backends.trt.outputs`), kept on the model so TensorRT's callbacks outlive the call."""
        import torch

        outputs: dict[str, Any] = {}
        dynamic: dict[str, Any] = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch_dtype(self.engine.get_tensor_dtype(name), name)
            if needs_allocator(shape):
                dynamic[name] = dtype
                continue
            outputs[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not dynamic:
            return outputs, None
        if self._late is None or set(self._late[0].dtypes) != set(dynamic):
            buffers = OutputBuffers(self.device, dynamic)
            allocator = make_allocator(self._trt, buffers)
            for name in dynamic:
                if not self.context.set_output_allocator(name, allocator):
                    raise TrtExecutionError(f"TensorRT refused an output allocator for '{name}'")
            self._late = (buffers, allocator)
        return outputs, self._late[0]

    def fetch(self, outputs: dict[str, Any]) -> Tensors:
        """Wait for ``self.stream`` and copy the outputs to the host."""
        self.stream.synchronize()
        self._keep = []
        return {name: t.cpu().numpy() for name, t in outputs.items()}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self.fetch(self.run(inputs))

    def synchronize(self) -> None:
        self.stream.synchronize()


class StagedInputs(dict):
    """A feed already on the model's device, checked against the profile (:meth:`TrtModel.stage`)."""
