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
    """Write ``weights.onnx`` and the upstream's auxiliary files; return the ONNX package manifest."""
    options = request.options
    opset = int(options.get("opset", DEFAULT_OPSET))
    check_opset_supported(opset)
    target = request.staging_dir / WEIGHTS_FILE
    upstream_onnx = sorted(request.upstream_dir.glob("*.onnx"))
    if upstream_onnx and not options.get("reexport", False):
        shutil.copyfile(upstream_onnx[0], target)
    else:
        _export_torch(request, target, opset)
    _check(target)
    _copy_aux_files(request.upstream_dir, request.staging_dir, options.get("copy_files"))
    manifest: dict[str, Any] = {
        "type": MANIFEST_TYPE,
        "backendType": "onnx",
        "quantization": options.get("quantization", "fp32"),
        "opset": opset,
    }
    static = options.get("static_batch_size")
    if static:
        manifest["staticBatchSize"] = int(static)
    else:
        manifest["dynamicBatchSize"] = True
    return ExportResult(
        package_manifest=manifest,
        model_class=options.get("model_class") or "backends.onnx.model:OnnxModel",
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


def _export_torch(request: ExportRequest, target: Path, opset: int) -> None:
    import torch

    from backends.registry import load_model_class

    reference = load_model_class(request.reference_class).from_pretrained(request.upstream_dir, device="cpu")
    if not hasattr(reference, "torch_module"):
        raise ExportError(
            f"{request.reference_class} has no torch_module(); the onnx exporter needs a torch module "
            "to trace, or an upstream that already is ONNX"
        )
    module, input_names, output_names = reference.torch_module()
    args = tuple(torch.from_numpy(request.sample_inputs[name]) for name in input_names)
    static = request.options.get("static_batch_size")
    dynamic_axes = {}
    for name, arg in zip(input_names, args, strict=True):
        axes = {} if static else {0: "batch"}
        axes.update({dim: f"{name}_dim{dim}" for dim in range(1, arg.dim())})
        dynamic_axes[name] = axes
    for name in output_names:
        dynamic_axes[name] = {} if static else {0: "batch"}
    use_dynamo = request.options.get("exporter", "legacy") == "dynamo"
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
                dynamic_shapes=_dynamic_shapes(args, static) if use_dynamo else None,
                dynamo=use_dynamo,
                external_data=_needs_external_data(module),
            )
    except Exception as exc:  # torch raises many unrelated types here; wrap them all with context
        raise ExportError(
            f"torch.onnx.export failed for {request.architecture}/{request.variant}: {exc}"
        ) from exc


def _dynamic_shapes(args: tuple[Any, ...], static: Any) -> tuple[dict[int, Any], ...]:
    import torch

    batch = None if static else torch.export.Dim("batch", min=1, max=1024)
    return tuple(
        ({0: batch} if batch else {}) | {d: torch.export.Dim.AUTO for d in range(1, a.dim())} for a in args
    )


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


def _copy_aux_files(upstream: Path, staging: Path, patterns: list[str] | None) -> None:
    """Copy tokenizer/config files so the package can pre-process on its own; weights are never copied."""
    for source in sorted(p for p in upstream.rglob("*") if p.is_file()):
        rel = source.relative_to(upstream).as_posix()
        if patterns is not None:
            wanted = any(fnmatch.fnmatch(rel, p) for p in patterns)
        else:
            wanted = not any(fnmatch.fnmatch(rel, p) for p in (*WEIGHT_PATTERNS, *SKIP_PATTERNS))
        if wanted and not (staging / rel).exists():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / rel)
