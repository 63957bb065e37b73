"""Trace (or script) the reference's torch module and save it with ``torch.jit.save``."""

from __future__ import annotations

import importlib.metadata
import json
import warnings

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.torch.common import batch_fields, reference_module, sample_args, torch_dtype
from backends.torchscript import CONFIG_FILE, WEIGHTS_FILE

MANIFEST_TYPE = "torch-script-model-package-v1"


def export(request: ExportRequest) -> ExportResult:
    """Write ``model.pt``; options: ``method`` (``trace``|``script``), ``quantization`` (fp32/fp16/bf16),
    ``supported_device_types`` (default ``["cpu", "cuda"]``), ``static_batch_size``, ``copy_files``.

    Tracing records the ops run on the recipe's sample inputs: Python control flow that depends on values
    is frozen, and tensors created on the tracing device (the CPU) stay there; the package's parity check on
    every device is what proves the trace is general.
    """
    import torch

    from backends.onnx.exporter import _copy_aux_files

    options = request.options
    method = options.get("method", "trace")
    if method not in ("trace", "script"):
        raise ExportError(f"backends.torch-script.method = '{method}' (accepted: trace, script)")
    quantization = options.get("quantization", "fp32")
    dtype = torch_dtype(quantization)
    _, module, input_names, output_names = reference_module(request, "torch-script")
    module = module.to(dtype).eval()
    args = sample_args(request, input_names, dtype)
    config = {
        "input_names": input_names,
        "output_names": output_names,
        "method": method,
        "dtype": str(dtype).removeprefix("torch."),
    }
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings are expected; parity proves the trace
            if method == "script":
                compiled = torch.jit.script(module)
            else:
                compiled = torch.jit.trace(module, args, strict=False, check_trace=False)
            compiled = torch.jit.freeze(compiled.eval()) if options.get("freeze", False) else compiled
    except Exception as exc:  # tracing/scripting raise many types; wrap them with context
        raise ExportError(
            f"torch.jit.{method} failed for {request.architecture}/{request.variant}: {exc}"
        ) from exc
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    torch.jit.save(compiled, str(request.staging_dir / WEIGHTS_FILE), _extra_files={"weightpack.json": text})
    (request.staging_dir / CONFIG_FILE).write_text(text)
    _copy_aux_files(request.upstream_dir, request.staging_dir, options.get("copy_files"))
    manifest = {
        "type": MANIFEST_TYPE,
        "backendType": "torch-script",
        "quantization": quantization,
        "supportedDeviceTypes": list(options.get("supported_device_types", ["cpu", "cuda"])),
        "torchVersion": torch.__version__,
        "torchVisionVersion": _torchvision_version(),
        **batch_fields(options),
    }
    return ExportResult(
        package_manifest=manifest,
        model_class=options.get("model_class") or "backends.torchscript.model:TorchScriptModel",
        notes=[f"torch.jit.{method} on inputs {[tuple(a.shape) for a in args]}"],
    )


def _torchvision_version() -> str | None:
    """The installed torchvision's version without importing it (it may not match torch), else None."""
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None
