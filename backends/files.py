"""File and manifest helpers every exporter shares (public: backends import these, not each other's
private functions)."""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WEIGHT_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.onnx",
    "*.onnx.data",
    "*.onnx_data",
    "*.data",
    "*.plan",
    "*.engine",
    "*.tflite",
    "*.gguf",
)
"""Model weight files, in any framework's format: never copied into another backend's package as an
auxiliary file, and always STORED (not deflated) in a package zip."""

SKIP_PATTERNS: tuple[str, ...] = (".git*", "model_config.json", "onnx/*", "openvino/*", "README.md")
"""Upstream files no package needs: VCS metadata, other exports, the consumer's reserved name."""


def matches(rel: str, patterns: Iterable[str]) -> bool:
    """True when the relative path ``rel`` matches any glob in ``patterns``."""
    return any(fnmatch.fnmatch(rel, p) for p in patterns)


def copy_aux_files(
    upstream: Path,
    staging: Path,
    patterns: list[str] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """Copy the upstream's tokenizer/config files into ``staging`` so the package can pre-process on its
    own; weights are never copied. ``patterns`` (a recipe's ``copy_files``) replaces the default choice;
    ``skip`` lists relative paths already consumed. Returns the relative paths copied."""
    skipped = set(skip)
    copied = []
    for source in sorted(p for p in Path(upstream).rglob("*") if p.is_file()):
        rel = source.relative_to(upstream).as_posix()
        if rel in skipped:
            continue
        if patterns is not None:
            wanted = matches(rel, patterns)
        else:
            wanted = not matches(rel, (*WEIGHT_PATTERNS, *SKIP_PATTERNS))
        target = Path(staging) / rel
        if wanted and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(rel)
    return copied


def batch_fields(static_batch_size: int | None) -> dict[str, Any]:
    """Exactly one of ``dynamicBatchSize: true`` or ``staticBatchSize: N``, as the registry wants."""
    return {"staticBatchSize": int(static_batch_size)} if static_batch_size else {"dynamicBatchSize": True}
