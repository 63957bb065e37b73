"""Export a reference model's torch module to ONNX (or adopt an upstream ONNX file), then check it."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.files import batch_fields, copy_aux_files
from backends.onnx import WEIGHTS_FILE
from backends.onnx.spec import SPEC, OnnxOptions, opset_problem


def export(request: ExportRequest) -> ExportResult:
    """Write ``weights.onnx`` and the upstream's auxiliary files; return the ONNX package manifest.

    Options (:class:`~backends.onnx.spec.OnnxOptions`): ``opset``, ``exporter`` (``legacy``
    TorchScript-based, or ``dynamo``: ``torch.export`` + onnxscript), ``static_batch_size``,
    ``quantization`` (``fp32`` or ``fp16``: weights and activations converted by onnxconverter-common with
    float32 inputs/outputs kept, or the torch module halved before export when it is missing),
    ``reexport``, ``copy_files``, ``external_data``, ``incompatible_providers``.
    """
    options = SPEC.parse_options(request.options)
    assert isinstance(options, OnnxOptions)
    loader = OnnxFromReference(request, options)
    target = loader(request.staging_dir)
    copy_aux_files(request.upstream_dir, request.staging_dir, options.copy_files, skip=loader.consumed)
    manifest: dict[str, Any] = {
        **SPEC.manifest_base(options.quantization),
        "opset": _model_opset(target) or options.target_opset,
        **batch_fields(options.static_batch_size),
    }
    if options.incompatible_providers:
        manifest["incompatibleProviders"] = list(options.incompatible_providers)
    return ExportResult(
        package_manifest=manifest,
        model_class=options.model_class or SPEC.default_model_class(request.task) or "",
        notes=loader.notes,
    )


class OnnxFromReference:
    """A loader in Polygraphy's sense: calling it with a folder writes ``weights.onnx`` there (exported
    from the reference's torch module, or adopted from an upstream ONNX file), checks it, and returns its
    path. The trt exporter composes one instead of re-entering :func:`export`."""

    def __init__(self, request: ExportRequest, options: OnnxOptions) -> None:
        self.request = request
        self.options = options
        self.notes: list[str] = []
        self.consumed: set[str] = set()
        """Upstream files (relative paths) that became ``weights.onnx``: not copied again."""

    def __call__(self, directory: Path) -> Path:
        request, options = self.request, self.options
        target = Path(directory) / WEIGHTS_FILE
        named = request.reference_kwargs.get("onnx_file")  # the graph the reference read, any name
        upstream_onnx = (
            [request.upstream_dir / named] if named else sorted(request.upstream_dir.glob("*.onnx"))
        )
        if upstream_onnx and not options.reexport:
            self.consumed = _adopt_onnx(upstream_onnx[0], target)
            self.notes.append(f"adopted upstream {upstream_onnx[0].name}")
        else:
            fp16 = options.quantization == "fp16"
            # with optimize = "transformer" the optimizer's own converter does fp16 (it knows fused ops)
            half_in_torch = fp16 and options.optimize == "none" and not _has_float16_converter()
            switched = _export_torch(request, options, target, half=half_in_torch)
            self.notes.append(f"{options.exporter} torch.onnx.export, opset {options.target_opset}")
            if switched:
                self.notes.append(f"exported with eager attention ({'; '.join(switched)})")
            if fp16 and not half_in_torch and options.optimize == "none":
                _convert_fp16(target)
                self.notes.append("converted to fp16 with onnxconverter-common (float32 inputs/outputs kept)")
        if options.optimize == "transformer":
            self.notes.append(_optimize(request, options, target))
        _check(target)
        check_opset_supported(_model_opset(target) or options.target_opset)
        return target


def check_opset_supported(opset: int) -> None:
    """Refuse a graph whose opset is newer than the installed onnxruntime runs, as the consumer does (a
    recipe's own opset was refused earlier, when it loaded; this catches an adopted upstream file)."""
    import onnxruntime

    problem = opset_problem(opset, onnxruntime.__version__)
    if problem:
        raise ExportError(f"the ONNX graph's opset {problem}; lower the recipe's opset")


def _optimize(request: ExportRequest, options: OnnxOptions, target: Path) -> str:
    """Replace ``target`` with onnxruntime's transformer-optimised graph; the note says what fused."""
    from backends.onnx.transformer import fusion_problem, optimize_file, optimizer_settings, read_config

    config = read_config(request.upstream_dir)
    settings = optimizer_settings(
        config, model_type=options.optimizer_model_type, num_heads=options.optimizer_num_heads,
        hidden_size=options.optimizer_hidden_size,
    )  # fmt: skip
    fp16 = options.quantization == "fp16" and not _is_float16(target)
    model, counts = optimize_file(target, settings, fp16=fp16)
    problem = fusion_problem(counts, settings, (config or {}).get("num_hidden_layers"))
    if problem:
        raise ExportError(problem)
    _save_with_external_data(model, target, external=(target.parent / (WEIGHTS_FILE + ".data")).exists())
    fused = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return f"onnxruntime transformer optimizer ({settings.describe()}): {fused or 'nothing fused'}" + (
        "; converted to fp16 by it (float32 inputs/outputs kept)" if fp16 else ""
    )


def _is_float16(path: Path) -> bool:
    """Whether the graph's initializers are already float16 (a module halved before export)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def _export_torch(
    request: ExportRequest, options: OnnxOptions, target: Path, half: bool = False
) -> list[str]:
    """Trace the reference's torch module into ``target``; returns the attention switches made for it
    (:func:`backends.onnx.transformer.attention_for_export`)."""
    import torch

    from backends.onnx.transformer import attention_for_export
    from backends.torch.common import reference_module, sample_args

    _, module, input_names, output_names = reference_module(request, "onnx", private=half)
    dtype = torch.float16 if half else None
    if half:
        module = module.half()
    args = sample_args(request, input_names, dtype, module)  # forward(x, sr: int) gets an int
    static = options.static_batch_size
    if static:  # a static graph is traced at exactly its batch size
        args = tuple(_resize_batch(a, int(static)) if hasattr(a, "repeat") else a for a in args)
    declared = declared_axes(input_names, args, options.dynamic_axes)
    dynamic_axes = {}
    batch = request.batch_axes  # a state [layers, N, hidden] is batched on axis 1, a constant on none
    for name in input_names:
        axes = {} if static or batch.get(name, 0) is None else {batch.get(name, 0): "batch"}
        axes.update({dim: f"{name}_dim{dim}" for dim in declared[name]})
        dynamic_axes[name] = axes
    for name in output_names:
        dynamic_axes[name] = {} if static or batch.get(name, 0) is None else {batch.get(name, 0): "batch"}
    use_dynamo = options.exporter == "dynamo"
    external = options.external_data or _needs_external_data(module)
    try:
        # Tracer warnings are expected for HF models; the package's parity check is what proves the graph.
        with (
            torch.inference_mode(False),
            torch.no_grad(),
            warnings.catch_warnings(),
            attention_for_export(module, options.attention) as switched,
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(target),
                input_names=input_names,
                output_names=output_names,
                opset_version=options.target_opset,
                dynamic_axes=None if use_dynamo else dynamic_axes,
                dynamic_shapes=_dynamo_shapes(module, args, static, declared, input_names)
                if use_dynamo
                else None,
                dynamo=use_dynamo,
                external_data=external,
            )
    except Exception as exc:  # torch raises many unrelated types here; wrap them all with context
        raise ExportError(
            f"torch.onnx.export failed for {request.architecture}/{request.variant}: {exc}"
        ) from exc
    if external:
        _consolidate_external_data(target)
    return switched


def _resize_batch(tensor: Any, batch: int) -> Any:
    """Repeat or cut ``tensor`` along dim 0 to ``batch`` rows."""
    reps = -(-batch // tensor.shape[0])
    return tensor.repeat(reps, *([1] * (tensor.dim() - 1)))[:batch].contiguous()


def declared_axes(
    input_names: list[str], args: tuple[Any, ...], recipe_axes: dict[str, Any] | None
) -> dict[str, list[int]]:
    """Which axes besides the batch are dynamic, per input: the recipe's ``dynamic_axes`` where it names
    the input; otherwise none for floating inputs (an image net traced at 48x48 is not proven at any other
    size), and every axis for integer inputs (token ids and masks: the text length varies)."""
    out = {}
    for name, arg in zip(input_names, args, strict=True):
        if recipe_axes and name in recipe_axes:
            out[name] = sorted(int(d) for d in recipe_axes[name] if int(d) != 0)
        elif not hasattr(arg, "dim") or arg.is_floating_point():  # a Python number: no axes at all
            out[name] = []
        else:
            out[name] = list(range(1, arg.dim()))
    return out


def _dynamo_shapes(
    module: Any, args: tuple[Any, ...], static: Any, declared: dict[str, list[int]], names: list[str]
) -> Any:
    """``dynamic_shapes`` for ``torch.export``; a ``forward(*args)`` takes them as one nested tuple."""
    import inspect

    shapes = _dynamic_shapes(args, static, [declared[n] for n in names])
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return (shapes,)
    return shapes


def _dynamic_shapes(
    args: tuple[Any, ...], static: Any, declared: list[list[int]]
) -> tuple[dict[int, Any], ...]:
    import torch

    batch = None if static else torch.export.Dim("batch", min=1, max=1024)
    return tuple(
        ({0: batch} if batch else {}) | {d: torch.export.Dim.AUTO for d in axes}
        for _, axes in zip(args, declared, strict=True)
    )


def _external_locations(model: Any) -> set[str]:
    """File names an ONNX model's initializers keep their data in (empty when all data is inline)."""
    from onnx.external_data_helper import uses_external_data

    return {
        entry.value
        for tensor in model.graph.initializer
        if uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }


def _save_with_external_data(model: Any, target: Path, external: bool = True) -> None:
    """Save ``model`` as ``target``; with ``external``, every tensor over 1 KiB goes to the one file
    ``weights.onnx.data`` beside it."""
    import onnx

    onnx.save_model(
        model,
        str(target),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=WEIGHTS_FILE + ".data",
        size_threshold=1024,
    )


def _consolidate_external_data(target: Path) -> None:
    """Rewrite external tensors into a single ``weights.onnx.data`` beside ``weights.onnx`` (one file to
    ship and hash, instead of whatever names the exporter chose)."""
    import onnx

    locations = _external_locations(onnx.load(str(target), load_external_data=False))
    model = onnx.load(str(target), load_external_data=True)
    for location in locations:
        (target.parent / location).unlink(missing_ok=True)
    _save_with_external_data(model, target)


def _adopt_onnx(source: Path, target: Path) -> set[str]:
    """Copy an upstream ONNX file (its external data rewritten into ``weights.onnx.data``); return the
    upstream files it consumed (relative paths), which are not copied again as auxiliary files."""
    import onnx

    locations = _external_locations(onnx.load(str(source), load_external_data=False))
    if not locations:
        shutil.copyfile(source, target)
        return {source.name}
    model = onnx.load(str(source), load_external_data=True)
    _save_with_external_data(model, target)
    return {source.name, *locations}


def _has_float16_converter() -> bool:
    from backends.extras import available

    return available("onnxconverter_common")


def _convert_fp16(target: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(target), load_external_data=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one "truncated to 1e-07" warning per tiny weight
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    _save_with_external_data(converted, target, external=(target.parent / (WEIGHTS_FILE + ".data")).exists())


def _model_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _needs_external_data(module: Any) -> bool:
    """Protobuf caps a file at 2 GB; larger models keep weights in ``weights.onnx.data``."""
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    return size > 1.8 * 2**30


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:  # onnx raises ValidationError and C++ errors alike
        raise ExportError(f"onnx.checker rejected {path.name}: {exc}") from exc
