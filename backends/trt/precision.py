"""How to build at a precision with the installed TensorRT: weakly typed (builder flags) or strongly typed.

TensorRT 10 deprecates ``platform_has_fast_fp16`` and ``BuilderFlag.FP16`` in favour of strongly typed
networks, and TensorRT 11 removes them: every network is strongly typed, so precision comes from the
ONNX graph's own dtypes. An fp16 engine on 11 is therefore built from an fp16 ONNX export. A major this
module does not know is refused before anything is built. Pure function, no TensorRT import.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.errors import BrokenInstallError, ExportError

SUPPORTED_MAJORS = (10, 11)


@dataclass(frozen=True)
class PrecisionPlan:
    strongly_typed: bool
    """Create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED (or 11's default)."""
    builder_fp16: bool
    """Set BuilderFlag.FP16 (weakly typed fp16: TensorRT may pick fp16 kernels)."""
    onnx_quantization: str | None
    """Export the ONNX graph at this precision first (``fp16`` for strongly typed fp16), else as is."""


def precision_plan(trt_version: str, quantization: str, *, has_fp16_flag: bool) -> PrecisionPlan:
    """Decide for ``quantization`` (fp32 | fp16) under TensorRT ``trt_version``; ``has_fp16_flag``: the
    installed bindings still have ``BuilderFlag.FP16``."""
    try:
        major = int(str(trt_version).split(".")[0])
    except ValueError:
        raise ExportError(f"cannot read the TensorRT version '{trt_version}'") from None
    if major not in SUPPORTED_MAJORS:  # the wrong TensorRT installed: an environment problem (exit 3)
        raise BrokenInstallError(
            f"TensorRT {trt_version} is not supported (supported majors: "
            f"{', '.join(map(str, SUPPORTED_MAJORS))}); install 'weightpack[gpu]' (TensorRT 10, which "
            "onnxruntime's TensorRT provider also opens) or 'tensorrt-cu13>=11,<12'"
        )
    if quantization not in ("fp32", "fp16"):
        raise ExportError(f"backends.trt.quantization = {quantization!r} (accepted: fp32, fp16)")
    if major >= 11 or not has_fp16_flag:
        # strongly typed: the graph's dtypes are the engine's; fp16 means an fp16 graph
        return PrecisionPlan(True, False, "fp16" if quantization == "fp16" else None)
    return PrecisionPlan(False, quantization == "fp16", None)
