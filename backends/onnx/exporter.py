"""Export a reference model's torch module to ONNX (or adopt an upstream ONNX file), then check it."""

from __future__ import annotations

import fnmatch
import shutil
import warnings
from pathlib import Path
from typing import Any

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.onnx import WEIGHTS_FILE

MANIFEST_TYPE = "onnx-model-package-v1"
DEFAULT_OPSET = 17
WEIGHT_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.onnx",
    "*.onnx.data",
)
SKIP_PATTERNS = (".git*", "model_config.json", "onnx/*", "openvino/*", "README.md")

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


def export(request: ExportRequest) -> ExportResult:
    """Write ``weights.onnx`` and the upstream's auxiliary files; return the ONNX package manifest.

    Options: ``opset`` (default 17; 18 with the dynamo exporter, the lowest it emits), ``exporter``
    (``legacy`` TorchScript-based, or ``dynamo``: ``torch.export`` + onnxscript), ``static_batch_size``,
    ``quantization`` (``fp32`` or ``fp16``: weights and activations converted by onnxconverter-common with
    float32 inputs/outputs kept, or the torch module halved before export when it is missing),
    ``reexport`` (trace the reference even when the upstream already is ONNX), ``copy_files``,
    ``external_data`` (force weights into ``weights.onnx.data``; automatic above 1.8 GB).
    """
    options = request.options
    use_dynamo = options.get("exporter", "legacy") == "dynamo"
    if options.get("exporter", "legacy") not in ("legacy", "dynamo"):
        raise ExportError(f"backends.onnx.exporter = {options['exporter']!r} (accepted: legacy, dynamo)")
    opset = int(options.get("opset", 18 if use_dynamo else DEFAULT_OPSET))
    check_opset_supported(opset)
    quantization = options.get("quantization", "fp32")
    if quantization not in ("fp32", "fp16"):
        raise ExportError(f"backends.onnx.quantization = {quantization!r} (accepted: fp32, fp16)")
    target = request.staging_dir / WEIGHTS_FILE
    upstream_onnx = sorted(request.upstream_dir.glob("*.onnx"))
    notes: list[str] = []
    consumed: set[str] = set()
    if upstream_onnx and not options.get("reexport", False):
        consumed = _adopt_onnx(upstream_onnx[0], target)
        notes.append(f"adopted upstream {upstream_onnx[0].name}")
    else:
        half_in_torch = quantization == "fp16" and not _has_float16_converter()
        _export_torch(request, target, opset, half=half_in_torch)
        notes.append(f"{'dynamo' if use_dynamo else 'legacy'} torch.onnx.export, opset {opset}")
        if quantization == "fp16" and not half_in_torch:
            _convert_fp16(target)
            notes.append("converted to fp16 with onnxconverter-common (float32 inputs/outputs kept)")
    _check(target)
    opset = _model_opset(target) or opset
    check_opset_supported(opset)
    _copy_aux_files(request.upstream_dir, request.staging_dir, options.get("copy_files"), skip=consumed)
    manifest: dict[str, Any] = {
        "type": MANIFEST_TYPE,
        "backendType": "onnx",
        "quantization": quantization,
        "opset": opset,
    }
    static = options.get("static_batch_size")
    if static:
        manifest["staticBatchSize"] = int(static)
    else:
        manifest["dynamicBatchSize"] = True
    if options.get("incompatible_providers"):
        manifest["incompatibleProviders"] = list(options["incompatible_providers"])
    return ExportResult(
        package_manifest=manifest,
        model_class=options.get("model_class") or "backends.onnx.model:OnnxModel",
        notes=notes,
    )


def check_opset_supported(opset: int) -> None:
    """Refuse an opset newer than the installed onnxruntime runs, as the consumer does."""
    import onnxruntime

    major, minor = (int(x) for x in onnxruntime.__version__.split(".")[:2])
    newest_known = max(ORT_MAX_OPSET)
    limit = ORT_MAX_OPSET.get(
        (major, minor), ORT_MAX_OPSET[newest_known] if (major, minor) > newest_known else 0
    )
    if opset > limit:
        raise ExportError(
            f"backends.onnx.opset = {opset} is newer than onnxruntime {onnxruntime.__version__} supports "
            f"(at most {limit}); lower the recipe's opset"
        )


def _export_torch(request: ExportRequest, target: Path, opset: int, half: bool = False) -> None:
    import torch

    from backends.torch.common import reference_module, sample_args

    _, module, input_names, output_names = reference_module(request, "onnx")
    dtype = torch.float16 if half else None
    if half:
        module = module.half()
    args = sample_args(request, input_names, dtype)
    static = request.options.get("static_batch_size")
    if static:  # a static graph is traced at exactly its batch size
        args = tuple(_resize_batch(a, int(static)) for a in args)
    dynamic_axes = {}
    for name, arg in zip(input_names, args, strict=True):
        axes = {} if static else {0: "batch"}
        axes.update({dim: f"{name}_dim{dim}" for dim in range(1, arg.dim())})
        dynamic_axes[name] = axes
    for name in output_names:
        dynamic_axes[name] = {} if static else {0: "batch"}
    use_dynamo = request.options.get("exporter", "legacy") == "dynamo"
    external = bool(request.options.get("external_data")) or _needs_external_data(module)
    try:
        # Tracer warnings are expected for HF models; the package's parity check is what proves the graph.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(target),
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                dynamic_axes=None if use_dynamo else dynamic_axes,
                dynamic_shapes=_dynamo_shapes(module, args, static) if use_dynamo else None,
                dynamo=use_dynamo,
                external_data=external,
            )
    except Exception as exc:  # torch raises many unrelated types here; wrap them all with context
        raise ExportError(
            f"torch.onnx.export failed for {request.architecture}/{request.variant}: {exc}"
        ) from exc
    if external:
        _consolidate_external_data(target)


def _resize_batch(tensor: Any, batch: int) -> Any:
    """Repeat or cut ``tensor`` along dim 0 to ``batch`` rows."""
    reps = -(-batch // tensor.shape[0])
    return tensor.repeat(reps, *([1] * (tensor.dim() - 1)))[:batch].contiguous()


def _dynamo_shapes(module: Any, args: tuple[Any, ...], static: Any) -> Any:
    """``dynamic_shapes`` for ``torch.export``; a ``forward(*args)`` takes them as one nested tuple."""
    import inspect

    shapes = _dynamic_shapes(args, static)
    params = inspect.signature(module.forward).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return (shapes,)
    return shapes


def _dynamic_shapes(args: tuple[Any, ...], static: Any) -> tuple[dict[int, Any], ...]:
    import torch

    batch = None if static else torch.export.Dim("batch", min=1, max=1024)
    return tuple(
        ({0: batch} if batch else {}) | {d: torch.export.Dim.AUTO for d in range(1, a.dim())} for a in args
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


def _save_with_external_data(model: Any, target: Path) -> None:
    """Save ``model`` as ``target`` with every tensor over 1 KiB in the one file ``weights.onnx.data``."""
    import onnx

    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
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
    external = (target.parent / (WEIGHTS_FILE + ".data")).exists()
    onnx.save_model(
        converted,
        str(target),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=WEIGHTS_FILE + ".data",
    )


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


def _copy_aux_files(
    upstream: Path, staging: Path, patterns: list[str] | None, skip: set[str] | frozenset[str] = frozenset()
) -> None:
    """Copy tokenizer/config files so the package can pre-process on its own; weights are never copied."""
    for source in sorted(p for p in upstream.rglob("*") if p.is_file()):
        rel = source.relative_to(upstream).as_posix()
        if rel in skip:
            continue
        if patterns is not None:
            wanted = any(fnmatch.fnmatch(rel, p) for p in patterns)
        else:
            wanted = not any(fnmatch.fnmatch(rel, p) for p in (*WEIGHT_PATTERNS, *SKIP_PATTERNS))
        if wanted and not (staging / rel).exists():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / rel)
