"""The package manifest written next to a zip: what it holds, its hashes, and where it came from.

``<name>.zip`` -> ``<name>.manifest.json``, written atomically as stable JSON (sorted keys). Schema
``weightpack.package-manifest/v1``: ``schema``, ``zip`` {name, size, md5, sha256}, ``files``
[{path, size, md5, sha256}], ``packageManifest`` (the registry's dict), ``provenance``, plus ``extra``'s
keys merged at the top level (they may not shadow the keys above).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from packager.archive import ZipResult, hash_file
from packager.atomic import write_json
from packager.errors import ArchiveError

MANIFEST_SCHEMA = "weightpack.package-manifest/v1"
RESERVED_KEYS = frozenset({"schema", "zip", "files", "packageManifest", "provenance"})
_ZIP_KEYS = ("name", "size", "md5", "sha256")


def manifest_path_for(zip_path: Path) -> Path:
    """``<name>.zip`` -> ``<name>.manifest.json`` in the same directory."""
    zip_path = Path(zip_path)
    if zip_path.suffix.lower() != ".zip":
        raise ArchiveError(f"{zip_path}: a package zip's name must end in .zip (accepted: '<name>.zip')")
    return zip_path.with_name(zip_path.name[: -len(".zip")] + ".manifest.json")


def write_manifest(
    result: ZipResult, *, package_manifest: dict, provenance: dict, extra: dict | None = None
) -> Path:
    """Write the manifest for ``result`` next to its zip; returns the manifest's path."""
    clash = sorted(RESERVED_KEYS & set(extra or {}))
    if clash:
        raise ArchiveError(
            f"manifest extra: keys {clash} are reserved (accepted: any key but {sorted(RESERVED_KEYS)})"
        )
    data: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "zip": {
            "name": result.zip_path.name,
            "size": result.size,
            "md5": result.md5,
            "sha256": result.sha256,
        },
        "files": [entry.to_dict() for entry in result.files],
        "packageManifest": package_manifest,
        "provenance": provenance,
        **(extra or {}),
    }
    path = manifest_path_for(result.zip_path)
    write_json(path, data)
    return path


def read_manifest(path: Path) -> dict:
    """Load a manifest, checking its schema and required keys."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{path}: cannot read manifest ({exc}) (accepted: a JSON manifest)") from exc
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ArchiveError(f"{path}: field 'schema' is {found!r} (accepted: {MANIFEST_SCHEMA!r})")
    missing = sorted(RESERVED_KEYS - set(data))
    zip_missing = [k for k in _ZIP_KEYS if not isinstance(data.get("zip"), dict) or k not in data["zip"]]
    if missing or zip_missing:
        raise ArchiveError(
            f"{path}: missing fields {missing + [f'zip.{k}' for k in zip_missing]} "
            f"(accepted: {sorted(RESERVED_KEYS)} with zip {{{', '.join(_ZIP_KEYS)}}})"
        )
    return data


def verify_zip_against_manifest(zip_path: Path, manifest: dict) -> None:
    """Raise ArchiveError unless the zip's size, md5 and sha256 match the manifest (size checked first)."""
    zip_path = Path(zip_path)
    want = manifest["zip"]
    size = os.stat(zip_path).st_size
    if size != want["size"]:
        raise ArchiveError(f"{zip_path}: size is {size} bytes, the manifest says {want['size']}")
    _, md5, sha256 = hash_file(zip_path)
    bad = [
        f"{name} is {got}, the manifest says {want[name]}"
        for name, got in (("md5", md5), ("sha256", sha256))
        if got != want[name]
    ]
    if bad:
        raise ArchiveError(f"{zip_path}: does not match its manifest: {'; '.join(bad)}")
