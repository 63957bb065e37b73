"""TensorRT tensor dtypes as torch dtypes, by the enum member's name: no ``trt.nptype``, whose table has
numpy's types only, so an engine with a bf16 or fp8 tensor raised ``TypeError`` (numpy has neither).

TensorRT 10.16 and 11.4 both define ``DataType`` FLOAT, HALF, BF16, FP8, E8M0, FP4, INT4, INT8, UINT8,
INT32, INT64, BOOL (scripts/check_trt_api.py lists them from the real bindings). FP4 and INT4 pack two
values per byte: a buffer of their shape is not ``numel * itemsize`` bytes, so they are refused with
their name rather than allocated wrong. Pure: no TensorRT import.
"""

from __future__ import annotations

from typing import Any

from backends.errors import ModelLoadError

TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "FP8": "float8_e4m3fn",
    "E8M0": "float8_e8m0fnu",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}
PACKED = frozenset({"FP4", "INT4"})
"""Sub-byte dtypes: two values per byte."""


def dtype_name(dtype: Any) -> str:
    """``trt.DataType.BF16`` -> ``"BF16"`` (a pybind11 enum's ``name``, else its ``str``'s last part)."""
    name = getattr(dtype, "name", None)
    return str(name if isinstance(name, str) else dtype).rsplit(".", 1)[-1]


def torch_dtype_name(dtype: Any, tensor: str = "") -> str:
    """The torch dtype name for TensorRT ``dtype`` of tensor ``tensor``; ModelLoadError naming both for
    one weightpack cannot hold in a torch tensor of the engine's shape."""
    name = dtype_name(dtype)
    if name in TORCH_DTYPES:
        return TORCH_DTYPES[name]
    what = f"tensor '{tensor}' has" if tensor else "a tensor has"
    if name in PACKED:
        raise ModelLoadError(
            f"the engine's {what} dtype {name}, packed two values per byte; weightpack feeds and reads "
            f"engines through tensors of {', '.join(sorted(TORCH_DTYPES))} only (keep {name} inside the "
            "network, with a cast at its inputs and outputs)"
        )
    raise ModelLoadError(
        f"the engine's {what} TensorRT dtype {name}, which weightpack does not know "
        f"(known: {', '.join(sorted(TORCH_DTYPES))})"
    )


def torch_dtype(dtype: Any, tensor: str = "") -> Any:
    """The ``torch.dtype`` for TensorRT ``dtype`` (:func:`torch_dtype_name`)."""
    import torch

    return getattr(torch, torch_dtype_name(dtype, tensor))
