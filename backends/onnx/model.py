"""onnxruntime model class: providers chosen from the device, inputs cast to what the graph declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import parse_device, resolve_device
from backends.errors import MissingExtraError, ModelLoadError
from backends.onnx import WEIGHTS_FILE

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
}


def providers_for(device: str, engine_cache_dir: Path | None = None) -> list[Any]:
    """The provider list for a device: CPU alone, or CUDA (device id set) with the CPU as fallback."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    options = {"device_id": index or 0}
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


class OnnxModel(PackageModel):
    """Runs ``weights.onnx`` in an onnxruntime InferenceSession."""

    backend = "onnx"

    def __init__(self, session: Any, path: Path, device: str) -> None:
        self.session = session
        self.path = path
        self.device = device
        self.inputs = {i.name: _ORT_TYPES.get(i.type, np.float32) for i in session.get_inputs()}
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cpu",
        onnx_execution_providers: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> OnnxModel:
        import onnxruntime

        path = Path(model_name_or_path)
        weights = require_file(path, WEIGHTS_FILE, "onnx")
        device = resolve_device(device)
        providers = list(onnx_execution_providers or providers_for(device))
        _require_providers(providers, onnxruntime.get_available_providers(), device)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if kwargs.get("intra_op_num_threads"):
            options.intra_op_num_threads = int(kwargs["intra_op_num_threads"])
        try:
            session = onnxruntime.InferenceSession(str(weights), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"onnxruntime could not load {weights}: {exc}") from exc
        return cls(session, path, device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; the graph takes {sorted(self.inputs)}")
        feed = {name: np.ascontiguousarray(inputs[name], dtype=dtype) for name, dtype in self.inputs.items()}
        outputs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs, strict=True))


def _require_providers(providers: Sequence[Any], available: Sequence[str], device: str) -> None:
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    missing = [n for n in names if n not in available and n != "CPUExecutionProvider"]
    if missing:
        raise MissingExtraError(f"running onnx on {device} ({', '.join(missing)})", "gpu", "onnxruntime-gpu")
