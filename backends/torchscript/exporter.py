"""Trace (or script) the reference's torch module and save it with ``torch.jit.save``."""

from __future__ import annotations

import importlib.metadata
import json
import warnings

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.files import batch_fields, copy_aux_files
from backends.torch.common import reference_module, sample_args, torch_dtype
from backends.torchscript import CONFIG_FILE, WEIGHTS_FILE
from backends.torchscript.spec import SPEC, TorchScriptOptions


def export(request: ExportRequest) -> ExportResult:
    """Write ``model.pt``; options: :class:`~backends.torchscript.spec.TorchScriptOptions`.

    Tracing records the ops run on the recipe's sample inputs: Python control flow that depends on values
    is frozen, and tensors created on the tracing device (the CPU) stay there; the package's parity check on
    every device is what proves the trace is general.
    """
    import torch

    options = SPEC.parse_options(request.options)
    assert isinstance(options, TorchScriptOptions)
    method = options.method
    quantization = options.quantization
    dtype = torch_dtype(quantization)
    # Module.to converts in place: a reference of its own unless it stays float32
    _, module, input_names, output_names = reference_module(
        request, "torch-script", private=dtype != torch.float32
    )
    module = module.to(dtype).eval()
    args = sample_args(request, input_names, dtype, module)
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
            kept = [m for m in ("reset_states",) if hasattr(compiled, m)]  # a streaming model's reset
            compiled = torch.jit.freeze(compiled.eval(), preserved_attrs=kept) if options.freeze else compiled
    except Exception as exc:  # tracing/scripting raise many types; wrap them with context
        raise ExportError(
            f"torch.jit.{method} failed for {request.architecture}/{request.variant}: {exc}"
        ) from exc
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    torch.jit.save(compiled, str(request.staging_dir / WEIGHTS_FILE), _extra_files={"weightpack.json": text})
    (request.staging_dir / CONFIG_FILE).write_text(text)
    copy_aux_files(request.upstream_dir, request.staging_dir, options.copy_files)
    manifest = {
        **SPEC.manifest_base(quantization),
        "supportedDeviceTypes": list(options.supported_device_types),
        "torchVersion": public_version(torch.__version__),
        "torchVisionVersion": _torchvision_version(),
        **batch_fields(options.static_batch_size),
    }
    return ExportResult(
        package_manifest=manifest,
        model_class=options.model_class or SPEC.default_model_class(request.task) or "",
        notes=[
            f"torch.jit.{method} on inputs {[tuple(a.shape) if hasattr(a, 'shape') else a for a in args]}"
        ],
    )


def public_version(version: str) -> str:
    """``2.13.0`` from ``2.13.0+cpu``: the consumer strips the local label from its runtime's version and
    compares, so a manifest that keeps it (``2.13.0+cpu`` > ``2.13.0``) is refused on the very same torch."""
    return version.split("+", 1)[0]


def _torchvision_version() -> str | None:
    """The installed torchvision's version without importing it (it may not match torch), else None."""
    try:
        return public_version(importlib.metadata.version("torchvision"))
    except importlib.metadata.PackageNotFoundError:
        return None
