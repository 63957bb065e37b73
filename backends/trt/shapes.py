"""Optimization-profile shapes: which (min, opt, max) each engine input gets, and whether a batch fits.

Pure functions over shapes (no TensorRT): the exporter resolves the batch range from the options, the
sample inputs and every batch size the run feeds (:func:`batch_range`), then each input's profile from the
ONNX graph and the recipe's dynamic axes; the model class checks each input against the recorded profile
before ``set_input_shape``, so a padded text batch of another length fails with a message naming the
input, the axis and the range (:class:`EngineInputError`, a failed check of that package) instead of an
obscure TensorRT error later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backends.errors import EXIT_CHECK_FAILED, ExportError, InputMismatchError, OptionError

Triple = tuple[int, int, int]
DEFAULT_MAX_BATCH = 16
"""Headroom of a dynamic engine when nothing asks for more: consumers feed batch sizes weightpack cannot
know, and a wider profile costs little."""


class EngineInputError(InputMismatchError):
    """A feed this engine cannot take (an input missing, a shape outside its profile, a shape TensorRT
    refuses): a failed check of that package (exit 1), recorded by verification like any parity failure.
    An InputMismatchError, so verification records it as this package's failure instead of aborting."""

    exit_code = EXIT_CHECK_FAILED


def batch_range(
    sample_batch: int,
    run_batches: Sequence[int],
    *,
    static: int | None = None,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
) -> Triple:
    """(min, opt, max) of the engine's batch axis. It must take every batch size the run feeds it (the
    parity sample's and each of the recipe's ``[bench] batch_sizes``), or latency fails at the first
    larger one. Defaults: min 1, opt the sample's batch, max the largest of those and 16. A range the
    recipe sets that leaves one out is bad input (exit 2), refused before TensorRT spends minutes."""
    used = sorted({int(sample_batch), *(int(b) for b in run_batches)})
    accepted = "a range covering the parity inputs' batch and every [bench] batch_sizes entry"
    if static:
        off = [b for b in used if b != static]
        if off:
            raise OptionError(
                "static_batch_size",
                f"is {static}, but the run feeds batch size(s) {off} (parity inputs / [bench] batch_sizes)",
                f"leave it unset for a dynamic engine, or inputs and [bench] batch_sizes = [{static}]",
            )
        return static, static, static
    low = min_batch or 1
    opt = opt_batch or int(sample_batch)
    high = max_batch or max(DEFAULT_MAX_BATCH, opt, *used)
    for field, given, left_out in (
        ("min_batch_size", min_batch, [b for b in used if b < low]),
        ("max_batch_size", max_batch, [b for b in used if b > high]),
    ):
        if left_out:
            problem = f"{given}: the engine's batch range [{low}, {high}] leaves out batch size(s) {left_out}"
            raise OptionError(field, problem, accepted)
    if not low <= opt <= high:
        raise OptionError("opt_batch_size", f"{opt} is outside [{low}, {high}]", "min <= opt <= max")
    return low, opt, high


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


def feed_problem(input_names: Sequence[str], fed: Sequence[str]) -> str | None:
    """Why a feed lacks an input the engine takes (``None`` when it has them all): a KeyError deep in the
    run would say neither what the engine takes nor what came."""
    missing = [n for n in input_names if n not in fed]
    if not missing:
        return None
    return (
        f"the feed has no input {missing[0]!r}, which the engine takes (takes {list(input_names)}; "
        f"fed: {list(fed)})"
    )


def refused_shape(
    name: str, shape: Sequence[int], low: Sequence[int] | None, high: Sequence[int] | None
) -> str:
    """The message for a shape TensorRT's ``set_input_shape`` refused although the recorded profile holds
    it: the engine and its trt_config.json disagree, so the package is wrong."""
    return (
        f"TensorRT refused shape {list(shape)} for input '{name}' (profile min {low}, max {high} in "
        "trt_config.json): the engine does not match its recorded profile; rebuild the package"
    )


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
