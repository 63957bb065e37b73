"""Staging verification records: what ``pack verify-remote --env staging`` proved, and the production gate.

``remote-verified.<env>.json`` in the pack output folder (written atomically, never holding the secret)
records per model id and backend the package that passed ``pack verify-remote``: its ``packageId``, the md5
of every file, the zip sha256 when a local manifest of this out folder has the same files, the time and the
registry host. ``pack ... --register --env production --execute`` publishes a package only when its file
md5s are recorded here for staging (``--skip-staging-check`` overrides it, loudly, and the publish state
file records that).
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packager import atomic
from packager.redact import redact_url

RECORD_SCHEMA = "weightpack.remote-verified/v1"


def record_path(out_dir: Path, env: str) -> Path:
    return Path(out_dir) / f"remote-verified.{env}.json"


def load(out_dir: Path, env: str = "staging") -> dict[str, Any]:
    """The record of ``out_dir`` (an empty one when missing or unreadable)."""
    path = record_path(out_dir, env)
    empty: dict[str, Any] = {"schema": RECORD_SCHEMA, "env": env, "models": {}}
    if not path.is_file():
        return empty
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return empty
    if data.get("schema") != RECORD_SCHEMA or not isinstance(data.get("models"), dict):
        return empty
    return data


def registry_host(url: str) -> str:
    """``host[:port]`` of a registry URL: never a path, query or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _local_zip_sha256(out_dir: Path, files: dict[str, str]) -> str | None:
    """The zip sha256 of the manifest in ``out_dir`` whose files have exactly these md5s (or this zip md5)."""
    for path in sorted(Path(out_dir).glob("*.manifest.json")):
        try:
            manifest = json.loads(path.read_text("utf-8"))
            zip_info = manifest["zip"]
            mine = {f["path"]: f["md5"] for f in manifest["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if mine == files or files == {zip_info.get("name", ""): zip_info.get("md5")}:
            return zip_info.get("sha256")
    return None


def record(out_dir: Path, env: str, model_id: str, results: list[dict[str, Any]], registry_url: str) -> Path:
    """Record every passed package of ``results`` (verify_remote's); drop entries of failed ones."""
    data = load(out_dir, env)
    per_backend = data["models"].setdefault(model_id, {})
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for r in results:
        files = dict(r.get("files") or {})
        backend = str(r["backend"])
        if r.get("passed") and files:
            per_backend[backend] = {
                "package_id": str(r.get("package_id")),
                "files": files,
                "zip_sha256": _local_zip_sha256(out_dir, files),
                "verified_at": now,
                "registry_host": registry_host(registry_url),
            }
        elif backend in per_backend and per_backend[backend].get("package_id") == str(r.get("package_id")):
            del per_backend[backend]  # it failed this time: no longer verified
    if not per_backend:
        del data["models"][model_id]
    path = record_path(out_dir, env)
    atomic.write_json(path, data)
    return path


def verified_entry(
    data: dict[str, Any], model_id: str, backends: set[str], files: dict[str, str], zip_md5: str
):
    """The record entry proving this package (same files and md5s, or the same zip) verified, else None."""
    for backend, entry in (data.get("models", {}).get(model_id) or {}).items():
        if backend not in backends:
            continue
        recorded = entry.get("files") or {}
        if recorded == files or (len(recorded) == 1 and next(iter(recorded.values())) == zip_md5):
            return entry
    return None


def has_model(data: dict[str, Any], model_id: str, backends: set[str]) -> bool:
    return any(b in backends for b in (data.get("models", {}).get(model_id) or {}))


def backend_names(backend: str, manifest_backend: str | None = None) -> set[str]:
    """Every name a backend goes by (pack name, wire name, manifest backendType): its spec's names."""
    from backends.registry import backend_names as names_of

    return names_of(backend) | (names_of(manifest_backend) if manifest_backend else set())


def verify_command(model_id: str, backend: str, out_dir: Path, registry_url: str | None = None) -> str:
    parts = [
        "pack",
        "verify-remote",
        model_id,
        "--env",
        "staging",
        "--backend",
        backend,
        "--out",
        str(out_dir),
    ]
    if registry_url:
        parts += ["--registry-url", redact_url(registry_url)]
    return shlex.join(parts)
