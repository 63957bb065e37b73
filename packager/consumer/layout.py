"""The consumer's layout: rename exported files and add files, per backend, before the zip is built.

The consumer loads a package through the class registered for its (architecture, task, backend), and
that class looks its files up by its own names (``inference.onnx`` + ``inference.yml`` for PP-OCR,
``weights.onnx`` + ``class_names.txt`` + ``inference_config.json`` for classification ONNX, ...). A recipe
says so in the backend's table:

```toml
[backends.onnx]
rename = { "weights.onnx" = "inference.onnx" }
[backends.onnx.files]
"inference.yml" = { hook = "ppocr_files:inference_yml" }   # module:function(request) -> str | bytes
"class_names.txt" = { source = "labels.txt" }                        # a file of the upstream source
```

Renames apply first, then added files; a name taken already is an error, never silently overwritten. The
archive rules still apply to the result (``model_config.json`` and ``model_dependencies/`` stay refused),
so :func:`check_layout` refuses reserved or malformed names when the recipe loads, and the build validates
the staging tree again afterwards.
"""

from __future__ import annotations

import filecmp
import re
import shutil
from pathlib import Path
from typing import Any

from backends.base import ExportRequest
from backends.errors import ExportError
from backends.registry import load_object
from packager.errors import RecipeError, WeightpackError

SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
HOOK_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
RESERVED = ("model_config.json", "model_dependencies")
FILE_KINDS = ("hook", "source")


class LayoutError(ExportError):
    """A rename or an added file could not be applied (a missing file, a name taken, a failing hook): the
    package's export failed."""


def check_layout(path: Path, where: str, rename: dict[str, Any], files: dict[str, Any]) -> None:
    """Refuse malformed layouts at recipe load: RecipeError naming the field and what is accepted."""
    for old, new in rename.items():
        _check_name(path, f"{where}.rename.{old}", old)
        if not isinstance(new, str):
            raise RecipeError(path, f"{where}.rename.{old}", f"has type {type(new).__name__}", "a file name")
        _check_name(path, f"{where}.rename.{old}", new)
    for name, spec in files.items():
        field = f"{where}.files.{name}"
        _check_name(path, field, name)
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in FILE_KINDS:
            accepted = '{ hook = "module:function" } or { source = "path" }'
            raise RecipeError(path, field, "must be a table with one key", accepted)
        kind, value = next(iter(spec.items()))
        if not isinstance(value, str) or (kind == "hook" and not HOOK_RE.match(value)):
            accepted = "'package.module:function'" if kind == "hook" else "a path inside the source"
            raise RecipeError(path, f"{field}.{kind}", f"{value!r} is not accepted", accepted)
        if kind == "source":
            _check_name(path, f"{field}.source", value)


def _check_name(path: Path, field: str, name: str) -> None:
    parts = name.split("/")
    if not all(SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
        raise RecipeError(path, field, f"{name!r} is not a package file name", "segments of [A-Za-z0-9._-]")
    if parts[0] in RESERVED:
        raise RecipeError(
            path, field, f"{name!r} is reserved by the consumer", "any name but model_config.json and "
            "model_dependencies/"
        )  # fmt: skip


def apply_layout(
    request: ExportRequest, rename: dict[str, str], files: dict[str, dict[str, str]]
) -> list[str]:
    """Rename and add files in ``request.staging_dir``; returns notes for the manifest."""
    staging, notes = request.staging_dir, []
    for old, new in rename.items():
        src, dst = staging / old, staging / new
        if not src.is_file():
            present = ", ".join(sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")))
            raise LayoutError(f"rename {old} -> {new}: the export has no {old} (it has: {present})")
        _refuse_taken(dst, f"rename {old} -> {new}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        notes.append(f"layout: {old} renamed {new}")
    for name, spec in files.items():
        dst = staging / name
        kind, value = next(iter(spec.items()))
        src = Path(request.upstream_dir) / value
        if kind == "source" and dst.is_file() and src.is_file() and filecmp.cmp(src, dst, shallow=False):
            notes.append(f"layout: {name} kept as exported (the same bytes as the source's {value})")
            continue  # a folder source's file the export copied already: the same file, not a clash
        _refuse_taken(dst, f"add {name}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if kind == "source":
            if not src.is_file():
                raise LayoutError(f"add {name}: the source has no {value}")
            shutil.copyfile(src, dst)
        else:
            content = _run_hook(value, request, name)
            if isinstance(content, str):
                dst.write_text(content, encoding="utf-8")
            else:
                dst.write_bytes(content)
        notes.append(f"layout: {name} added from {kind} {value}")
    return notes


def _refuse_taken(dst: Path, what: str) -> None:
    if dst.exists():
        raise LayoutError(f"{what}: the package already has {dst.name}; refusing to overwrite it")


def _run_hook(ref: str, request: ExportRequest, name: str) -> str | bytes:
    try:
        content = load_object(ref)(request)
    except (ImportError, AttributeError) as exc:
        raise LayoutError(f"add {name}: cannot import hook {ref}: {exc}") from None
    except WeightpackError:
        raise
    except Exception as exc:  # a user's hook: any failure is reported with its name
        raise LayoutError(f"add {name}: hook {ref} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(content, (str, bytes)):
        raise LayoutError(f"add {name}: hook {ref} returned {type(content).__name__}, expected str or bytes")
    return content
