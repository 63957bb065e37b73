"""Upstream references: the model every package's outputs are compared with.

The pipeline picks one from the source's files (``packager.reference.choose_reference``): the HF class for
a transformers snapshot, :class:`~packager.reference.module.ModuleReference` for a state dict plus the
recipe's ``[model] factory``, :class:`~packager.reference.onnx_file.OnnxFileReference` for an ``.onnx``
file and :class:`~packager.reference.torchscript_file.TorchScriptReference` for a TorchScript ``.pt``.

A hand-written reference class (``[parity] reference_class``) must provide what these do:

* ``from_pretrained(path, *, device="cpu", variant=None, **kwargs)`` (a classmethod) returning an instance,
  loading the upstream files in ``path`` (unknown keyword arguments ignored);
* ``infer({name: np.ndarray}) -> {name: np.ndarray}``;
* for the torch, torch-script and onnx exporters (unless the source already is ONNX): ``torch_module()``
  returning ``(nn.Module, input_names, output_names)``;
* for the torch exporter without ``backends.torch.factory``: ``torch_factory()`` returning
  ``("module:function", kwargs)`` that rebuilds the module without the upstream files.

``packager.reference.check_reference_class`` checks this before anything runs.
"""

from packager.reference.choose import (
    ReferenceSpec,
    check_recipe_imports,
    check_reference_class,
    choose_reference,
    import_reference,
    is_torchscript,
    reference_case,
    reference_for,
    run_reference,
    shape_cases,
)

__all__ = [
    "ReferenceSpec",
    "check_recipe_imports",
    "check_reference_class",
    "choose_reference",
    "import_reference",
    "is_torchscript",
    "reference_case",
    "reference_for",
    "run_reference",
    "shape_cases",
]
