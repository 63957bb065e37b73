"""Export: the upstream ``linear.npz`` (w, b) stored in the package's precision as ``weights.npz``."""

from __future__ import annotations

import numpy as np

from backends.base import ExportRequest, ExportResult
from npzbackend.spec import SPEC


def export(request: ExportRequest) -> ExportResult:
    options = SPEC.parse_options(request.options)
    dtype = np.float16 if options.quantization == "fp16" else np.float32
    with np.load(request.upstream_dir / "linear.npz") as data:
        arrays = {k: data[k].astype(dtype) for k in ("w", "b")}
    save = np.savez_compressed if options.compressed else np.savez
    save(request.staging_dir / "weights.npz", **arrays)
    return ExportResult(
        package_manifest=SPEC.manifest_base(options.quantization),
        model_class=options.model_class or SPEC.default_model_class(request.task) or "",
        notes=[f"{len(arrays)} arrays as {np.dtype(dtype).name}"],
    )
