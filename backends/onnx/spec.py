"""The onnx backend's declaration: names, options (the opset checked against onnxruntime when the recipe
loads), tolerances, extras, version key."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from backends.errors import OptionError
from backends.options import BackendOptions, field_path
from backends.spec import BackendSpec, Tolerance

DEFAULT_OPSET = 17
DYNAMO_MIN_OPSET = 18
"""The lowest opset the dynamo exporter emits, and its default."""

# onnxruntime release -> newest ONNX opset it implements (from onnxruntime's compatibility table).
ORT_MAX_OPSET = {
    (1, 15): 19,
    (1, 16): 19,
    (1, 17): 20,
    (1, 18): 21,
    (1, 19): 21,
    (1, 20): 21,
    (1, 21): 22,
    (1, 22): 23,
}
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")


def max_opset(ort_version: str) -> int:
    """The newest opset onnxruntime ``ort_version`` runs (a release newer than the table: the newest
    known; an older one: 0, nothing is accepted)."""
    major, minor = (int(x) for x in ort_version.split(".")[:2])
    newest_known = max(ORT_MAX_OPSET)
    if (major, minor) > newest_known:
        return ORT_MAX_OPSET[newest_known]
    return ORT_MAX_OPSET.get((major, minor), 0)


def ort_version() -> str | None:
    """The installed onnxruntime's version from its metadata (no import: recipes load fast), or None."""
    for dist in ORT_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def opset_problem(opset: int, version: str | None) -> str | None:
    """Why ``opset`` cannot run on onnxruntime ``version`` (None: it can, or onnxruntime is absent and
    the export will say so)."""
    if version is None:
        return None
    limit = max_opset(version)
    if opset > limit:
        return f"{opset} is newer than onnxruntime {version} supports (at most {limit})"
    return None


@dataclass(frozen=True)
class OnnxOptions(BackendOptions):
    """``[backends.onnx]``: export a torch module to ONNX (or adopt an upstream ONNX file)."""

    quantization: Literal["fp32", "fp16"] = "fp32"
    opset: int | None = None
    """Default 17 (18 with the dynamo exporter, the lowest it emits)."""
    exporter: Literal["legacy", "dynamo"] = "legacy"
    static_batch_size: int | None = None
    reexport: bool = False
    """Trace the reference even when the upstream already is ONNX."""
    external_data: bool = False
    """Force weights into ``weights.onnx.data`` (automatic above 1.8 GB)."""
    incompatible_providers: list[str] | None = None
    copy_files: list[str] | None = None
    dynamic_axes: dict[str, Any] | None = None
    """Axes besides the batch that vary, per input: ``{ image = [2, 3] }`` (height and width). Default:
    the batch axis only for floating inputs, every axis for integer ones (token ids: text length varies).
    A variant's shape set (several ``shapes``) is what proves the declared axes."""

    attention: Literal["eager", "as-loaded"] = "eager"
    """The attention of a transformers model while it is exported: ``eager`` (default), whose graph
    onnxruntime's transformer optimizer fuses into Attention nodes, or ``as-loaded`` (transformers'
    default, ``sdpa``, whose exported decomposition it fuses nothing of). Same outputs either way."""
    optimize: Literal["none", "transformer"] = "none"
    """``transformer``: ship the graph after ``onnxruntime.transformers.optimizer``'s offline fusions
    (Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu: com.microsoft operators, so the
    package then runs on onnxruntime only); what the CUDA and TensorRT execution providers run fastest."""
    optimizer_model_type: str | None = None
    """The optimizer's model type (``bert``, ``gpt2``, ...); default: from config.json's model_type."""
    optimizer_num_heads: int | None = None
    """Default: config.json's num_attention_heads."""
    optimizer_hidden_size: int | None = None
    """Default: config.json's hidden_size."""

    positive: ClassVar[tuple[str, ...]] = (
        "static_batch_size",
        "opset",
        "optimizer_num_heads",
        "optimizer_hidden_size",
    )

    @property
    def target_opset(self) -> int:
        """The opset to export with: the recipe's, else the exporter's default."""
        if self.opset is not None:
            return self.opset
        return DYNAMO_MIN_OPSET if self.exporter == "dynamo" else DEFAULT_OPSET

    def validate(self, where: str = "") -> None:
        for name, axes in (self.dynamic_axes or {}).items():
            if not isinstance(axes, list) or not all(isinstance(a, int) and a >= 0 for a in axes):
                raise OptionError(
                    field_path(where, f"dynamic_axes.{name}"),
                    f"{axes!r} is not a list of axis indices",
                    "e.g. { image = [2, 3] } for height and width",
                )
        if self.optimize == "none" and (
            self.optimizer_model_type or self.optimizer_num_heads or self.optimizer_hidden_size
        ):
            raise OptionError(
                field_path(where, "optimize"),
                "optimizer_* settings are given but optimize is 'none'",
                "optimize = 'transformer' with them, or leave them out",
            )
        problem = opset_problem(self.target_opset, ort_version())
        if problem:
            raise OptionError(field_path(where, "opset"), problem, f"<= {max_opset(ort_version() or '0.0')}")


SPEC = BackendSpec(
    name="onnx",
    package_type="onnx-model-package-v1",
    exporter="backends.onnx.exporter:export",
    options=OnnxOptions,
    model_classes={"*": "backends.onnx.model:OnnxModel"},
    preflight="backends.onnx.install:preflight",
    tolerance=Tolerance(1e-4, 1e-4),  # graph optimisations reorder float sums
    extras={
        "onnxruntime": ("cpu", "onnxruntime"),  # or onnxruntime-gpu (gpu extra), never both
        "onnxconverter_common": ("fp16", "onnxconverter-common"),
    },
    version_libraries=(
        "torch",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "onnxruntime-gpu",
        "onnxconverter-common",
    ),
    traces_reference=True,
    adopts_upstream=(".onnx",),  # an upstream .onnx file is adopted byte for byte
)
