"""Optimization-profile shapes: which (min, opt, max) each engine input gets, and whether a batch fits.

Pure functions over shapes (no TensorRT): the exporter resolves the profile from the ONNX graph, the sample
inputs, the batch range and the recipe's dynamic axes; the model class checks each input against the
recorded profile before ``set_input_shape``, so a padded text batch of another length fails with a
message naming the input, the axis and the range instead of an obscure TensorRT error later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backends.errors import ExportError

Triple = tuple[int, int, int]


def resolve_profile(
    name: str,
    graph_shape: Sequence[int],
    sample_shape: Sequence[int],
    batch: Triple,
    dim_ranges: Mapping[str, Sequence[int]],
) -> tuple[list[int], list[int], list[int]]:
    """(min, opt, max) shapes of input ``name``.

    Axis 0 takes ``batch``. Another axis takes ``dim_ranges["name.axis"]`` when given (the recipe's
    ``backends.trt.dim_ranges``, else what the recipe's ``[inputs]`` imply, e.g. a text recipe's sequence
    length ``(1, parity length, max_length)``); a static axis keeps its size; a dynamic axis with no range
    is refused: fixing it at the sample's size would make every other size fail at run time."""
    shapes: tuple[list[int], list[int], list[int]] = ([], [], [])
    for axis, size in enumerate(graph_shape):
        key = f"{name}.{axis}"
        if axis == 0:
            triple = tuple(batch)
        elif key in dim_ranges:
            triple = tuple(int(v) for v in dim_ranges[key])
            if len(triple) != 3 or not 1 <= triple[0] <= triple[1] <= triple[2]:
                raise ExportError(
                    f"backends.trt.dim_ranges['{key}'] = {list(dim_ranges[key])}: "
                    "expected [min, opt, max] with 1 <= min <= opt <= max"
                )
            if size > 0 and triple != (size, size, size):
                raise ExportError(
                    f"backends.trt.dim_ranges['{key}'] = {list(triple)}, but axis {axis} of '{name}' is "
                    f"fixed at {size} in the ONNX graph"
                )
        elif size > 0:
            triple = (int(size),) * 3
        else:
            raise ExportError(
                f"axis {axis} of input '{name}' is dynamic in the ONNX graph (sample size "
                f"{sample_shape[axis] if axis < len(sample_shape) else '?'}) and no range is known: set "
                f'backends.trt.dim_ranges = {{"{key}" = [min, opt, max]}} in the recipe'
            )
        for k in range(3):
            shapes[k].append(int(triple[k]))
    return shapes


def shape_problem(
    name: str, shape: Sequence[int], low: Sequence[int] | None, high: Sequence[int] | None
) -> str | None:
    """Why ``shape`` is outside the profile ``[low, high]`` of input ``name``; ``None`` when it fits (or
    the profile is unknown: an old trt_config.json)."""
    if low is None or high is None:
        return None
    if len(shape) != len(low):
        return (
            f"input '{name}' has {len(shape)} axes {list(shape)}, the engine takes {len(low)} ({list(low)})"
        )
    for axis, (size, lo, hi) in enumerate(zip(shape, low, high, strict=True)):
        if not lo <= size <= hi:
            what = "batch" if axis == 0 else f"axis {axis}"
            return (
                f"input '{name}' {what} is {size}, outside the engine's profile [{lo}, {hi}] "
                f"(shape {list(shape)}; profile min {list(low)}, max {list(high)}); rebuild with a wider "
                "backends.trt batch range / dim_ranges"
            )
    return None
