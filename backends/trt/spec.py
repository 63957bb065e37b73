"""The trt backend's declaration: names, options, tolerances, extras, version key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from backends.errors import OptionError
from backends.onnx.spec import OnnxOptions
from backends.options import BackendOptions, field_path
from backends.spec import BackendSpec, Tolerance

DEFAULT_WORKSPACE_MB = 4096


@dataclass(frozen=True)
class TrtOptions(BackendOptions):
    """``[backends.trt]``: a TensorRT engine parsed from an ONNX export (``onnx`` holds its options)."""

    quantization: Literal["fp32", "fp16"] = "fp32"
    static_batch_size: int | None = None
    min_batch_size: int | None = None
    """Default 1."""
    opt_batch_size: int | None = None
    """Default: the sample inputs' batch."""
    max_batch_size: int | None = None
    """Default: the largest of 16, opt and every ``[bench] batch_sizes`` entry (the engine must take each
    batch size the run feeds it; a range set here that leaves one out is refused at export)."""
    dim_ranges: dict[str, Any] = field(default_factory=dict)
    """``{"input_ids.1" = [min, opt, max]}`` for dynamic non-batch axes; default: what the recipe's
    ``[inputs]`` imply (a text recipe's sequence axis: ``[1, parity length, max_length]``)."""
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    tf32: bool = False
    """Allow TF32 in fp32 layers (costs ~1e-3 in parity)."""
    timing_cache: str | None = None
    """Path of a timing cache read and updated across builds."""
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: Literal["none", "ampere_plus", "same_compute_capability"] = "none"
    onnx: OnnxOptions = field(default_factory=OnnxOptions)
    """Options of the ONNX export the engine is parsed from."""
    copy_files: list[str] | None = None

    positive: ClassVar[tuple[str, ...]] = (
        "static_batch_size",
        "min_batch_size",
        "opt_batch_size",
        "max_batch_size",
        "workspace_mb",
    )

    def validate(self, where: str = "") -> None:
        low, opt, high = self.min_batch_size, self.opt_batch_size, self.max_batch_size
        given = [b for b in (low, opt, high) if b is not None]
        if given != sorted(given):
            raise OptionError(
                field_path(where, "min_batch_size"),
                f"batch sizes need min <= opt <= max, got {low}, {opt}, {high}",
                "min_batch_size <= opt_batch_size <= max_batch_size",
            )
        if self.onnx.optimize != "none":
            raise OptionError(
                field_path(where, "onnx.optimize"),
                f"{self.onnx.optimize!r} adds onnxruntime's com.microsoft operators, which TensorRT's ONNX "
                "parser cannot read (TensorRT fuses attention itself)",
                "none",
            )
        for key, triple in self.dim_ranges.items():
            ok = isinstance(triple, list) and len(triple) == 3 and all(isinstance(v, int) for v in triple)
            if not ok or not 0 < triple[0] <= triple[1] <= triple[2]:
                raise OptionError(
                    field_path(where, f"dim_ranges.{key}"), f"{triple!r} is not a range", "[min, opt, max]"
                )

    def onnx_options(self) -> OnnxOptions:
        """The ONNX export's options; a static engine needs a static graph of the same batch."""
        if self.static_batch_size and not self.onnx.static_batch_size:
            return dataclasses.replace(self.onnx, static_batch_size=self.static_batch_size)
        return self.onnx


SPEC = BackendSpec(
    name="trt",
    package_type="trt-model-package-v1",
    exporter="backends.trt.exporter:export",
    options=TrtOptions,
    model_classes={"*": "backends.trt.model:TrtModel"},
    tolerance=Tolerance(1e-3, 1e-3),
    extras={"tensorrt": ("gpu", "tensorrt")},
    version_libraries=("tensorrt", "torch", "onnx"),
    preflight="backends.trt.exporter:preflight",
    device_bound=True,
    # weightpack verifies engines it has just built: their embedded lean runtime (host code) is trusted
    load_kwargs={"engine_host_code_allowed": True},
    traces_reference=True,
)
