"""Copy a transformers snapshot into a package, converting pickled ``.bin`` weights to safetensors."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from backends.base import ExportRequest, ExportResult
from backends.errors import ExportError
from backends.hf.spec import SPEC, HFOptions

# Files an HF package never needs: VCS metadata, other frameworks' weights, the consumer's reserved name.
DEFAULT_EXCLUDE = (
    ".git*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "model_config.json",
)


def export(request: ExportRequest) -> ExportResult:
    """Copy every wanted file of the snapshot; a ``pytorch_model.bin`` becomes ``model.safetensors``."""
    options = SPEC.parse_options(request.options)
    assert isinstance(options, HFOptions)
    exclude = tuple(options.exclude if options.exclude is not None else DEFAULT_EXCLUDE)
    copied = 0
    notes: list[str] = []
    for source in sorted(p for p in request.upstream_dir.rglob("*") if p.is_file()):
        rel = source.relative_to(request.upstream_dir).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
            continue
        target = request.staging_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".bin") and "pytorch_model" in rel:
            _bin_to_safetensors(source, target.with_name(target.name.replace("pytorch_model", "model")))
            target = target.with_suffix(".safetensors")
            notes.append(f"converted {rel} to safetensors")
        else:
            shutil.copyfile(source, target)
        copied += 1
    if not (request.staging_dir / "config.json").is_file():
        raise ExportError(f"{request.upstream_dir} has no config.json: it is not a transformers snapshot")
    if not any(request.staging_dir.rglob("*.safetensors")):
        raise ExportError(f"{request.upstream_dir} has no safetensors or pytorch_model.bin weights")
    manifest = SPEC.manifest_base(options.quantization)
    model_class = options.model_class or SPEC.default_model_class(request.task) or ""
    return ExportResult(package_manifest=manifest, model_class=model_class, notes=notes)


def _bin_to_safetensors(source: Path, target: Path) -> None:
    import torch
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    # safetensors refuses shared storage; clone so tied weights are saved as separate tensors.
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(target.with_suffix(".safetensors")))
