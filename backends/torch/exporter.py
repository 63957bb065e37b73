"""Save the reference's torch module as a state dict + the factory that rebuilds it."""

from __future__ import annotations

import json
from typing import Any

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.torch import CONFIG_FILE, WEIGHTS_FILE
from backends.torch.common import batch_fields, call_factory, reference_module, torch_dtype

MANIFEST_TYPE = "torch-model-package-v1"


def export(request: ExportRequest) -> ExportResult:
    """Write ``model.safetensors`` + ``torch_config.json``; check the factory rebuilds the same module.

    Options: ``factory`` (``module:function``; default: the reference's ``torch_factory()``),
    ``factory_kwargs`` (a table; string values may use ``{variant}``), ``quantization`` (fp32/fp16/bf16),
    ``static_batch_size``, ``copy_files`` (glob list of upstream files to ship; default: non-weight files).
    """
    from safetensors.torch import save_file

    from backends.onnx.exporter import _copy_aux_files
    from backends.registry import load_object

    options = request.options
    reference, module, input_names, output_names = reference_module(request, "torch")
    factory_ref, kwargs = _factory(request, reference)
    quantization = options.get("quantization", "fp32")
    dtype = torch_dtype(quantization)
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous().clone()
        for k, v in module.state_dict().items()
    }
    save_file(state, str(request.staging_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    _copy_aux_files(request.upstream_dir, request.staging_dir, options.get("copy_files"))
    config = {
        "factory": factory_ref,
        "factory_kwargs": kwargs,
        "input_names": input_names,
        "output_names": output_names,
        "dtype": str(dtype).removeprefix("torch."),
    }
    (request.staging_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    try:
        rebuilt = call_factory(load_object(factory_ref), kwargs, str(request.staging_dir))
        rebuilt.load_state_dict(state, strict=True)
    except Exception as exc:  # any failure here means the package could not be loaded by its class
        raise ExportError(
            f"factory {factory_ref}({kwargs}) does not rebuild the reference module: {exc}"
        ) from exc
    manifest = {
        "type": MANIFEST_TYPE,
        "backendType": "torch",
        "quantization": quantization,
        **batch_fields(options),
    }
    return ExportResult(
        package_manifest=manifest,
        model_class=options.get("model_class") or "backends.torch.model:TorchModel",
        notes=[f"{len(state)} tensors; factory {factory_ref}"],
    )


def _factory(request: ExportRequest, reference: Any) -> tuple[str, dict[str, Any]]:
    options = request.options
    if options.get("factory"):
        ref, kwargs = str(options["factory"]), dict(options.get("factory_kwargs", {}))
    elif hasattr(reference, "torch_factory"):
        ref, kwargs = reference.torch_factory()
        kwargs = {**kwargs, **dict(options.get("factory_kwargs", {}))}
    else:
        raise ExportError(
            f"backends.torch.factory is not set and {request.reference_class} has no torch_factory(); "
            "name the nn.Module factory as 'module:function'"
        )
    kwargs = {k: v.format(variant=request.variant) if isinstance(v, str) else v for k, v in kwargs.items()}
    return ref, kwargs
