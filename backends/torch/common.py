"""Helpers shared by the exporters that start from the reference model's torch module."""

from __future__ import annotations

import inspect
from typing import Any

from backends.base import ExportRequest
from backends.errors import ExportError


def load_reference(request: ExportRequest, private: bool = False) -> Any:
    """The upstream reference model on the CPU (``variant=`` lets one class serve several variants), loaded
    once per process (:mod:`backends.loaded`) and shared: ``private=True`` for a caller that changes it."""
    from backends.loaded import reference_model

    kwargs = dict(request.reference_kwargs)
    return reference_model(
        request.reference_class, request.upstream_dir, request.variant, kwargs, not private
    )


def reference_module(
    request: ExportRequest, backend: str, private: bool = False
) -> tuple[Any, Any, list[str], list[str]]:
    """``(reference, module, input_names, output_names)``; ExportError when the class has no torch module.
    ``private=True``: the caller changes the module (dtype), so it gets a reference of its own."""
    reference = load_reference(request, private)
    if not hasattr(reference, "torch_module"):
        raise ExportError(
            f"{request.reference_class} has no torch_module(); the {backend} exporter needs a torch module "
            "(set parity.reference_class to a class that provides one)"
        )
    module, input_names, output_names = reference.torch_module()
    missing = [n for n in input_names if n not in request.sample_inputs]
    if missing:
        raise ExportError(f"the recipe's [inputs] do not produce {missing}, which the model takes")
    return reference, module, list(input_names), list(output_names)


def sample_args(
    request: ExportRequest, input_names: list[str], dtype: Any = None, module: Any = None
) -> tuple[Any, ...]:
    """The recipe's sample inputs as torch tensors in ``input_names`` order; floats cast to ``dtype``
    (default float32, the reference's precision, so float64 sample inputs trace a float32 graph). With
    ``module``, a 0-d input its ``forward`` declares as a number is that number (:func:`module_args`)."""
    import torch

    def to_tensor(array: Any) -> Any:
        tensor = torch.from_numpy(array.copy())
        return tensor.to(dtype or torch.float32) if tensor.is_floating_point() else tensor

    arrays = [request.sample_inputs[name] for name in input_names]
    return tuple(module_args(module, arrays, to_tensor) if module is not None else map(to_tensor, arrays))


def torch_dtype(quantization: str) -> Any:
    """The torch dtype a package's float weights are stored in for a recipe ``quantization``."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if quantization not in table:
        raise ExportError(f"quantization '{quantization}' is not supported by torch exports (fp32/fp16/bf16)")
    return table[quantization]


def call_factory(factory: Any, kwargs: dict[str, Any], package_dir: str | None) -> Any:
    """Call a module factory, adding ``package_dir=`` when its signature accepts it."""
    kwargs = dict(kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if package_dir is not None and "package_dir" in params:
        kwargs["package_dir"] = package_dir
    return factory(**kwargs)


NUMBER_TYPES = {"int": int, "float": float, "bool": bool, int: int, float: float, bool: bool}


def number_parameters(module: Any) -> list[type | None]:
    """For each positional argument of ``module``'s ``forward`` (``self`` left out), the Python number type
    it takes (``int sr``), else ``None`` (a tensor): from the TorchScript schema of a scripted module, or
    the annotations of an eager one. A 0-d input is passed to such an argument as a number."""
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is not None:
        return [NUMBER_TYPES.get(str(a.type)) for a in list(schema.arguments)[1:]]
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        NUMBER_TYPES.get(p.annotation)
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def module_args(module: Any, arrays: list[Any], to_tensor: Any) -> list[Any]:
    """``arrays`` (numpy, in ``forward``'s order) as ``forward``'s arguments: a 0-d array for an argument
    declared ``int``/``float``/``bool`` becomes that Python number (``forward(x, sr: int)`` refuses a
    tensor); everything else goes through ``to_tensor``."""
    numbers = number_parameters(module)
    args = []
    for index, array in enumerate(arrays):
        kind = numbers[index] if index < len(numbers) else None
        if kind is not None and getattr(array, "ndim", None) == 0:
            args.append(kind(array.item()))
        else:
            args.append(to_tensor(array))
    return args
