"""Save the reference's torch module as a state dict + the factory that rebuilds it."""

from __future__ import annotations

import json
from typing import Any

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.files import batch_fields, copy_aux_files
from backends.torch import CONFIG_FILE, WEIGHTS_FILE
from backends.torch.common import call_factory, reference_module, torch_dtype
from backends.torch.spec import SPEC, TorchOptions


def export(request: ExportRequest) -> ExportResult:
    """Write ``model.safetensors`` + ``torch_config.json``; check the factory rebuilds the same module.

    Options: :class:`~backends.torch.spec.TorchOptions`.
    """
    from safetensors.torch import save_file

    from backends.spec import load_object

    options = SPEC.parse_options(request.options)
    assert isinstance(options, TorchOptions)
    reference, module, input_names, output_names = reference_module(request, "torch")
    factory_ref, kwargs = _factory(request, options, reference)
    quantization = options.quantization
    dtype = torch_dtype(quantization)
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous().clone()
        for k, v in module.state_dict().items()
    }
    save_file(state, str(request.staging_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    copy_aux_files(request.upstream_dir, request.staging_dir, options.copy_files)
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
    manifest = {**SPEC.manifest_base(quantization), **batch_fields(options.static_batch_size)}
    return ExportResult(
        package_manifest=manifest,
        model_class=options.model_class or SPEC.default_model_class(request.task) or "",
        notes=[f"{len(state)} tensors; factory {factory_ref}"],
    )


def _factory(request: ExportRequest, options: TorchOptions, reference: Any) -> tuple[str, dict[str, Any]]:
    if options.factory:
        ref, kwargs = options.factory, dict(options.factory_kwargs)
    elif hasattr(reference, "torch_factory"):
        ref, kwargs = reference.torch_factory()
        kwargs = {**kwargs, **options.factory_kwargs}
    else:
        raise ExportError(
            f"backends.torch.factory is not set and {request.reference_class} has no torch_factory(); "
            "name the nn.Module factory as 'module:function'"
        )
    kwargs = {k: v.format(variant=request.variant) if isinstance(v, str) else v for k, v in kwargs.items()}
    return ref, kwargs
