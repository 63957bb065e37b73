"""The registry's state: models, packages (sealed or not, with their files' md5s) and upload tokens.

In memory when ``root`` is None; else kept in ``ROOT/registry.json``, rewritten atomically after every
change, with each package file at ``ROOT/files/<package id>/<file handle>`` (:class:`DiskFiles`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from packager import atomic
from packager.errors import UsageError

SCHEMA = "weightpack.local-registry/v1"
SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_FILE_SIZE = 2 * 2**30


class Files(Protocol):
    """Where uploaded package files are kept."""

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...


class MemoryFiles:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> None:
        self.data[name] = data

    def get(self, name: str) -> bytes | None:
        return self.data.get(name)


class DiskFiles:
    """Files under ``root`` (``packages/<id>/<handle>``), each written to a temporary name and renamed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        parts = name.split("/")
        if not all(SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts):
            raise ValueError(f"{name!r} is not a safe file name")
        return self.root.joinpath(*parts)

    def put(self, name: str, data: bytes) -> None:
        with atomic.atomic_open(self.path(name)) as out:
            out.write(data)

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except (OSError, ValueError):
            return None


@dataclass
class Package:
    id: str
    model_id: str
    manifest: dict[str, Any]
    handles: list[str]
    features: dict[str, Any]
    sealed: bool = False
    md5: dict[str, str] = field(default_factory=dict)


class RegistryState:
    """Models, packages and upload tokens; ``lock`` guards every change (the server is threaded)."""

    def __init__(self, root: Path | None = None, files: Files | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self.models: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, Package] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.state_lock = threading.RLock()
        self._ids = itertools.count(1)
        if files is None:
            files = DiskFiles(self.root / "files") if self.root is not None else MemoryFiles()
        self.files = files
        if self.root is not None:
            self.load()

    @property
    def state_file(self) -> Path | None:
        return self.root / "registry.json" if self.root is not None else None

    def load(self) -> None:
        """Read ``ROOT/registry.json`` when there is one (a new folder starts empty)."""
        path = self.state_file
        if path is None or not path.is_file():
            return
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
            self.models = dict(data["models"])
            self.packages = {p["id"]: Package(**p) for p in data["packages"]}
            self.tokens = {t: (pid, h) for t, (pid, h) in data.get("tokens", {}).items()}
            self._ids = itertools.count(int(data.get("next_id", 1)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not a weightpack registry state ({exc}); use another --root") from None

    def save(self) -> None:
        """Persist the state (atomically); a no-op in memory."""
        path = self.state_file
        if path is None:
            return
        next_id = next(self._ids)
        self._ids = itertools.count(next_id)
        atomic.write_json(
            path,
            {
                "schema": SCHEMA,
                "next_id": next_id,
                "models": self.models,
                "packages": [dataclasses.asdict(p) for p in self.packages.values()],
                "tokens": {t: list(v) for t, v in self.tokens.items()},
            },
        )

    def new_package_id(self) -> str:
        """Alphanumeric, like the service's (the consumer refuses others), sorting in creation order."""
        return f"{next(self._ids):04d}{secrets.token_hex(6)}"

    def object_name(self, package_id: str, handle: str) -> str:
        return f"packages/{package_id}/{handle}"

    def sealed(self, model_id: str | None = None) -> list[Package]:
        return [p for p in self.packages.values() if p.sealed and model_id in (None, p.model_id)]

    def stored_md5(self, package_id: str, handle: str) -> str | None:
        data = self.files.get(self.object_name(package_id, handle))
        return None if data is None else hashlib.md5(data).hexdigest()

    # ------------------------------------------------------------------ the service's answers

    def register_model(self, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [k for k in ("modelId", "modelArchitecture", "modelVariant", "taskType") if not body.get(k)]
        if missing:
            return 400, {"error": f"missing {missing}"}
        if body["modelId"] in self.models:
            return 409, {"error": "model already registered"}
        self.models[body["modelId"]] = body
        return 200, {"modelId": body["modelId"]}

    def register_package(self, body: dict[str, Any]) -> tuple[int, Any] | tuple[int, Package]:
        """409 for a sealed identical package; else ``(200, package)``: the same unsealed one again (a
        resumed registration), or a new one."""
        model_id, manifest, handles = (
            body.get("modelId"),
            body.get("packageManifest"),
            body.get("fileHandles"),
        )
        if model_id not in self.models:
            return 404, {"error": f"model {model_id} is not registered"}
        if not isinstance(manifest, dict) or "type" not in manifest:
            return 400, {"error": "packageManifest must be an object with a type"}
        if not handles or not isinstance(handles, list) or len(set(handles)) != len(handles):
            return 400, {"error": "fileHandles must be a non-empty list of unique handles"}
        for h in handles:
            if not isinstance(h, str) or not all(SEGMENT.fullmatch(s) for s in h.split("/")):
                return 400, {"error": f"bad file handle {h!r}"}
        same = [
            p
            for p in self.packages.values()
            if p.model_id == model_id and p.manifest == manifest and p.handles == handles
        ]
        if any(p.sealed for p in same):
            return 409, {"error": "package already registered", "modelPackageId": same[0].id}
        features = body.get("modelFeatures") or {}
        package = same[0] if same else Package(self.new_package_id(), model_id, manifest, handles, features)
        self.packages[package.id] = package
        return 200, package

    def upload_token(self, package_id: str, handle: str) -> str:
        token = secrets.token_urlsafe(16)
        self.tokens[token] = (package_id, handle)
        return token

    def confirm(self, body: dict[str, Any]) -> tuple[int, Any]:
        package = self.packages.get(body.get("modelPackageId"))
        if package is None or package.model_id != body.get("modelId"):
            return 404, {"error": "unknown package"}
        if package.sealed:
            return 409, {"error": "package is sealed"}
        confirmed = {c["fileHandle"]: c["md5Hash"] for c in body.get("confirmations", [])}
        problems = []
        for h in package.handles:
            stored = self.stored_md5(package.id, h)
            if h not in confirmed:
                problems.append(f"{h}: not confirmed")
            elif stored is None:
                problems.append(f"{h}: not uploaded")
            elif stored != confirmed[h]:
                problems.append(f"{h}: stored md5 {stored} != confirmed {confirmed[h]}")
        if problems:
            return 400, {"error": "cannot seal", "problems": problems}
        if body.get("sealModelPackage"):
            package.sealed = True
            package.md5 = {h: confirmed[h] for h in package.handles}
            self.tokens = {t: v for t, v in self.tokens.items() if v[0] != package.id}
        return 200, {"modelPackageId": package.id, "sealed": package.sealed}
