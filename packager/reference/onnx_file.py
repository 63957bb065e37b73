"""An upstream ``.onnx`` file of any name as the reference: onnxruntime on the CPU, graph optimisations off,
so the reference computes the graph as written and the package (optimised) is compared against it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors
from backends.errors import UserModelError
from backends.onnx.signature import check_feed, graph_inputs


class OnnxFileReference(PackageModel):
    """``from_pretrained(path, onnx_file=None)``: the named ``.onnx`` in ``path``, else the only one."""

    backend = "onnx"

    def __init__(self, session: Any, file: Path) -> None:
        self.session = session
        self.file = file
        self.device = "cpu"
        self.declared = graph_inputs(session)
        self.output_names = [o.name for o in session.get_outputs()]
        self.casts: list[dict[str, object]] = []
        self.what = f"ONNX file {file.name}"

    @classmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", onnx_file: str | None = None, **_: Any
    ) -> OnnxFileReference:
        import onnxruntime

        path = Path(model_name_or_path)
        candidates = [path / onnx_file] if onnx_file else sorted(path.glob("*.onnx"))
        if len(candidates) != 1 or not candidates[0].is_file():
            names = ", ".join(p.name for p in sorted(path.glob("*.onnx"))) or "none"
            raise UserModelError(f"the source must hold exactly one .onnx file (found: {names})")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = onnxruntime.InferenceSession(
                str(candidates[0]), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise UserModelError(f"onnxruntime cannot load {candidates[0].name}: {exc}") from exc
        return cls(session, candidates[0])

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        feed, self.casts = check_feed(self.declared, inputs, self.what)
        return dict(zip(self.output_names, self.session.run(self.output_names, feed), strict=True))
