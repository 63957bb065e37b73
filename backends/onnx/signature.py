"""What an ONNX graph declares for its inputs, and the check of a feed against it.

onnxruntime's own errors (``INVALID_ARGUMENT : Got invalid dimensions for input: image for the following
indices index: 2 Got: 24 Expected: 48``) name neither the shape received nor the whole shape expected; this
check runs first and does, and it refuses value-changing dtype casts (``backends.casting``) instead of
casting silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.casting import cast_inputs
from backends.errors import InputMismatchError

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def graph_inputs(session: Any) -> dict[str, tuple[list[Any], Any]]:
    """``{name: (shape, numpy dtype)}``; a dynamic axis is its symbolic name (``batch``) or ``None``."""
    return {i.name: (list(i.shape), ORT_TYPES.get(i.type, np.float32)) for i in session.get_inputs()}


def _shape_text(shape: list[Any]) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def check_feed(
    declared: Mapping[str, tuple[list[Any], Any]], inputs: Mapping[str, np.ndarray], what: str
) -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    """The feed for ``session.run`` (declared inputs only, cast within a kind) and the casts made; raises
    InputMismatchError naming the input, the declared shape/dtype and what was received."""
    missing = [n for n in declared if n not in inputs]
    if missing:
        received = ", ".join(f"'{k}'" for k in inputs) or "nothing"
        raise InputMismatchError(
            f"the {what} takes inputs {', '.join(repr(n) for n in declared)}; received {received} "
            f"(missing {', '.join(repr(n) for n in missing)}): rename the recipe's inputs"
        )
    for name, (shape, dtype) in declared.items():
        got = np.shape(inputs[name])
        bad_rank = len(got) != len(shape)
        bad_dims = [i for i, d in enumerate(shape) if isinstance(d, int) and i < len(got) and got[i] != d]
        if bad_rank or bad_dims:
            which = "rank" if bad_rank else f"axis {', '.join(map(str, bad_dims))}"
            raise InputMismatchError(
                f"the {what}: input '{name}' expected shape {_shape_text(shape)} {np.dtype(dtype)}, received "
                f"{list(got)} {np.asarray(inputs[name]).dtype} (wrong {which})"
            )
    return cast_inputs({n: inputs[n] for n in declared}, {n: d for n, (_, d) in declared.items()}, what)
