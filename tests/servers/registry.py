"""A models-service registry and a GCS emulator on loopback, for the publish tests.

``gcs_emulator``: ``gcp-storage-emulator`` in-process on a free 127.0.0.1 port (in memory, bucket
``weightpack-test``), with ``STORAGE_EMULATOR_HOST`` set so the real google-cloud-storage client talks to it.

``registry_server``: :class:`RegistryServer`, implementing the flow of docs/publish.md: register model
(at ``model_register_path``, an assumption: no public client has that endpoint; ``None`` = no such route),
register package (signed upload URLs that point at this server, which writes each upload through to the
emulator), confirm + seal (checks every file's md5 in the emulator), and the weights endpoint (download
URLs served by the emulator). As strict as the real client and service: package ids are alphanumeric,
upload specs carry their ``type`` fields, the weights endpoint pages (``page_size`` packages a page, the
next one asked for with ``startAfter=<nextPage>``) and refuses query parameters it does not know.
Failures are injected with :meth:`RegistryServer.fail`: an HTTP status, a
delay (client timeout), a dropped connection (half the upload read, then the socket closed), a corrupted
upload (wrong bytes stored, 200 answered), or a request held until the test sets ``block`` (``arrived`` is
set when it comes in; at most :data:`BLOCK_MAX_S`). ``declared_sizes`` makes the weights endpoint list a
``size`` for those file handles (true or false: the service's word). Every wait is bounded; both servers
stop at teardown.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from ._base import LoopbackServer, QuietHandler

BUCKET = "weightpack-test"
MODEL_REGISTER_PATH = "/models/v1/external/models/register"
WEIGHTS_PARAMS = {"modelId", "startAfter", "pageSize", "includeCoreMLPackages"}
SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_FILE_SIZE = 2 * 2**30
BLOCK_MAX_S = 120.0


class GcsEmulator:
    def __init__(self, bucket: str = BUCKET) -> None:
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        self.bucket = bucket
        self._server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)

    def start(self) -> GcsEmulator:
        self._server.start()
        host, port = self._server._api._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            credentials=AnonymousCredentials(), project="test", client_options={"api_endpoint": self.url}
        )

    def put(self, name: str, data: bytes) -> None:
        r = requests.put(f"{self.url}/{self.bucket}/{quote(name)}", data=data, timeout=30)
        r.raise_for_status()

    def get(self, name: str) -> bytes | None:
        r = requests.get(f"{self.url}/{self.bucket}/{quote(name)}", timeout=30)
        return r.content if r.status_code == 200 else None

    def names(self) -> list[str]:
        return sorted(b.name for b in self.client().list_blobs(self.bucket))


@dataclass
class Rule:
    route: str  # model, package, upload, confirm, weights
    times: int = 1
    status: int | None = None
    delay: float | None = None
    drop: bool = False
    corrupt: bool = False
    handle: str | None = None  # uploads: only this file handle
    echo_auth: bool = False  # put the request's Authorization header in the error body
    block: threading.Event | None = None  # hold the request until the test sets it
    arrived: threading.Event = field(default_factory=threading.Event)  # set when the rule was applied


@dataclass
class Package:
    id: str
    model_id: str
    manifest: dict[str, Any]
    handles: list[str]
    features: dict[str, Any]
    sealed: bool = False
    md5: dict[str, str] = field(default_factory=dict)


class RegistryServer(LoopbackServer):
    def __init__(self, emulator: GcsEmulator, secret: str) -> None:
        super().__init__()
        self.emulator = emulator
        self.secret = secret
        self.models: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, Package] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.rules: list[Rule] = []
        self.omit_md5: set[str] = set()  # file handles listed without md5Hash by the weights endpoint
        self.declared_sizes: dict[str, Any] = {}  # file handle -> the "size" the weights endpoint lists
        self.state_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.page_size = 2  # small, so that any test with three packages reads several pages
        self.model_register_path: str | None = MODEL_REGISTER_PATH
        self.untyped_answers = False  # answer registrations without the type fields (an old service)

    def new_package_id(self) -> str:
        """Alphanumeric, like the service's (the consumer refuses others), sorting in creation order."""
        return f"{next(self._ids):04d}{secrets.token_hex(6)}"

    def fail(self, route: str, **kwargs: Any) -> Rule:
        rule = Rule(route, **kwargs)
        self.rules.append(rule)
        return rule

    def take_rule(self, route: str, handle: str | None = None) -> Rule | None:
        with self.state_lock:
            for rule in self.rules:
                if rule.route == route and rule.times > 0 and (rule.handle in (None, handle)):
                    rule.times -= 1
                    return rule
        return None

    def object_name(self, package_id: str, handle: str) -> str:
        return f"packages/{package_id}/{handle}"

    def sealed(self, model_id: str | None = None) -> list[Package]:
        return [p for p in self.packages.values() if p.sealed and model_id in (None, p.model_id)]

    def copy_package(
        self,
        package: Package,
        manifest: dict[str, Any] | None = None,
        edit: Callable[[str, bytes], bytes] | None = None,
    ) -> Package:
        """Another sealed package of the same model with ``package``'s files, stored under its own id:
        ``manifest`` replaces its manifest, ``edit(handle, data)`` changes a file's stored bytes (its
        registered md5 stays ``package``'s, as a corrupted upload's would)."""
        other = Package(
            self.new_package_id(), package.model_id, dict(manifest or package.manifest),
            list(package.handles), dict(package.features), sealed=True, md5=dict(package.md5),
        )  # fmt: skip
        for handle in package.handles:
            data = self.emulator.get(self.object_name(package.id, handle))
            self.emulator.put(self.object_name(other.id, handle), edit(handle, data) if edit else data)
        self.packages[other.id] = other
        return other


class _RegistryHandler(QuietHandler):
    app: RegistryServer

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that timed out
            super().handle()

    def _json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _apply(self, rule: Rule | None, body_read: bool) -> bool:
        """Apply a failure rule; True when the request has been answered (or dropped)."""
        if rule is None:
            return False
        rule.arrived.set()
        if rule.block is not None:
            rule.block.wait(BLOCK_MAX_S)
        if rule.delay:
            time.sleep(min(rule.delay, 5.0))
        if rule.drop:
            length = int(self.headers.get("Content-Length") or 0)
            if not body_read and length:
                self.rfile.read(length // 2)
            self._drop()
            return True
        if rule.status:
            if not body_read:
                self._read()
            error: dict[str, Any] = {"error": f"injected {rule.status}"}
            if rule.echo_auth:
                error["received"] = {"authorization": self.headers.get("Authorization")}
            self._json(rule.status, error)
            return True
        return False

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.app.secret}":
            return True
        self._read()
        self._json(401, {"error": "missing or wrong service secret"})
        return False

    def do_GET(self) -> None:
        self.app.record("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
        parts = urlsplit(self.path)
        if parts.path != "/models/v1/external/weights":
            return self._json(404, {"error": f"no route {parts.path}"})
        if self._apply(self.app.take_rule("weights"), True) or not self._authorized():
            return None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - WEIGHTS_PARAMS)
        if unknown:
            return self._json(400, {"error": f"unknown query parameters {unknown}"})
        model_id = (query.get("modelId") or [""])[0]
        model = self.app.models.get(model_id)
        if model is None:
            return self._json(404, {"error": f"model {model_id} not found"})
        start_after = (query.get("startAfter") or [""])[0]
        page_size = int((query.get("pageSize") or [self.app.page_size])[0])
        listed = sorted(self.app.sealed(model_id), key=lambda p: p.id)
        remaining = [p for p in listed if p.id > start_after] if start_after else listed
        page = remaining[:page_size]
        next_page = page[-1].id if len(remaining) > page_size else None
        emu = self.app.emulator
        packages = []
        for p in page:
            files = []
            for h in p.handles:
                record = {
                    "fileHandle": h,
                    "downloadUrl": f"{emu.url}/{emu.bucket}/{quote(self.app.object_name(p.id, h))}",
                }
                if h not in self.app.omit_md5:
                    record["md5Hash"] = p.md5[h]
                if h in self.app.declared_sizes:
                    record["size"] = self.app.declared_sizes[h]
                files.append(record)
            packages.append(
                {
                    "type": "external-model-package-v1",
                    "packageId": p.id,
                    "packageManifest": p.manifest,
                    "modelFeatures": p.features,
                    "trustedSource": True,
                    "packageFiles": files,
                }
            )
        return self._json(
            200,
            {
                "modelMetadata": {
                    "type": "external-model-metadata-v1",
                    "modelId": model_id,
                    "modelArchitecture": model["modelArchitecture"],
                    "modelVariant": model["modelVariant"],
                    "taskType": model["taskType"],
                    "modelPackages": packages,
                    "nextPage": next_page,
                }
            },
        )

    def do_POST(self) -> None:
        self.app.record("POST", self.path, {k.lower(): v for k, v in self.headers.items()})
        routes = {
            "/models/v1/external/model-packages/register": ("package", self._register_package),
            "/models/v1/external/model-packages/artefacts/confirm": ("confirm", self._confirm),
        }
        if self.app.model_register_path:
            routes[self.app.model_register_path] = ("model", self._register_model)
        if self.path not in routes:
            self._read()
            return self._json(404, {"error": f"no route {self.path}"})
        name, handler = routes[self.path]
        if self._apply(self.app.take_rule(name), False) or not self._authorized():
            return None
        try:
            body = json.loads(self._read() or b"null")
        except ValueError:
            return self._json(400, {"error": "body is not JSON"})
        with self.app.state_lock:
            status, answer = handler(body)
        return self._json(status, answer)

    def _register_model(self, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [k for k in ("modelId", "modelArchitecture", "modelVariant", "taskType") if not body.get(k)]
        if missing:
            return 400, {"error": f"missing {missing}"}
        if body["modelId"] in self.app.models:
            return 409, {"error": "model already registered"}
        self.app.models[body["modelId"]] = body
        return 200, {"modelId": body["modelId"]}

    def _register_package(self, body: dict[str, Any]) -> tuple[int, Any]:
        model_id, manifest, handles = (
            body.get("modelId"),
            body.get("packageManifest"),
            body.get("fileHandles"),
        )
        if model_id not in self.app.models:
            return 404, {"error": f"model {model_id} is not registered"}
        if not isinstance(manifest, dict) or "type" not in manifest:
            return 400, {"error": "packageManifest must be an object with a type"}
        if not handles or len(set(handles)) != len(handles):
            return 400, {"error": "fileHandles must be a non-empty list of unique handles"}
        for h in handles:
            if not all(SEGMENT.fullmatch(s) for s in h.split("/")):
                return 400, {"error": f"bad file handle {h!r}"}
        features = body.get("modelFeatures") or {}
        same = [
            p
            for p in self.app.packages.values()
            if p.model_id == model_id and p.manifest == manifest and p.handles == handles
        ]
        if any(p.sealed for p in same):
            return 409, {"error": "package already registered", "modelPackageId": same[0].id}
        package = (
            same[0] if same else Package(self.app.new_package_id(), model_id, manifest, handles, features)
        )
        self.app.packages[package.id] = package
        specs = []
        for h in handles:
            token = secrets.token_urlsafe(16)
            self.app.tokens[token] = (package.id, h)
            spec: dict[str, Any] = {
                "type": "external-file-upload-specs-v1",
                "fileHandle": h,
                "signedUrlDetails": {
                    "type": "signed-url-details-v1",
                    "uploadUrl": f"{self.app.url}/upload/{token}?X-Goog-Signature=fake",
                    "method": "PUT",
                    "extensionHeaders": {"X-Goog-Content-Length-Range": f"0,{MAX_FILE_SIZE}"},
                    "maxFileSize": MAX_FILE_SIZE,
                },
            }
            if self.app.untyped_answers:
                del spec["type"], spec["signedUrlDetails"]["type"]
            specs.append(spec)
        return 200, {"modelId": model_id, "modelPackageId": package.id, "filesUploadSpecs": specs}

    def _confirm(self, body: dict[str, Any]) -> tuple[int, Any]:
        package = self.app.packages.get(body.get("modelPackageId"))
        if package is None or package.model_id != body.get("modelId"):
            return 404, {"error": "unknown package"}
        if package.sealed:
            return 409, {"error": "package is sealed"}
        confirmed = {c["fileHandle"]: c["md5Hash"] for c in body.get("confirmations", [])}
        problems = []
        for h in package.handles:
            data = self.app.emulator.get(self.app.object_name(package.id, h))
            if h not in confirmed:
                problems.append(f"{h}: not confirmed")
            elif data is None:
                problems.append(f"{h}: not uploaded")
            elif hashlib.md5(data).hexdigest() != confirmed[h]:
                problems.append(
                    f"{h}: stored md5 {hashlib.md5(data).hexdigest()} != confirmed {confirmed[h]}"
                )
        if problems:
            return 400, {"error": "cannot seal", "problems": problems}
        if body.get("sealModelPackage"):
            package.sealed = True
            package.md5 = {h: confirmed[h] for h in package.handles}
        return 200, {"modelPackageId": package.id, "sealed": package.sealed}

    def do_PUT(self) -> None:
        self.app.record("PUT", self.path, {k.lower(): v for k, v in self.headers.items()})
        parts = urlsplit(self.path)
        token = parts.path.removeprefix("/upload/")
        target = self.app.tokens.get(token)
        if target is None:
            self._read()
            return self._json(403, {"error": "invalid or expired signature"})
        package_id, handle = target
        rule = self.app.take_rule("upload", handle)
        if self._apply(rule, False):
            return None
        if self.headers.get("X-Goog-Content-Length-Range") != f"0,{MAX_FILE_SIZE}":
            self._read()
            return self._json(400, {"error": "the signed extension headers were not sent"})
        if self.headers.get("Authorization"):
            self._read()
            return self._json(400, {"error": "signed URLs take no Authorization header"})
        data = self._read()
        package = self.app.packages[package_id]
        if package.sealed:
            return self._json(403, {"error": "package is sealed"})
        if rule is not None and rule.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"x"
        self.app.emulator.put(self.app.object_name(package_id, handle), data)
        return self.send_body(200, b"", {"ETag": base64.b64encode(hashlib.md5(data).digest()).decode()})


RegistryServer.handler_class = _RegistryHandler


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    emulator = GcsEmulator().start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def registry_server(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryServer]:
    """The registry on loopback; the secret is in ``MODELS_SERVICE_INTERNAL_SECRET``, the URL in
    ``WEIGHTPACK_REGISTRY_URL_STAGING``, and retries are short."""
    secret = "s3cr3t-" + secrets.token_hex(8)
    server = RegistryServer(gcs_emulator, secret).start()
    monkeypatch.setenv("MODELS_SERVICE_INTERNAL_SECRET", secret)
    monkeypatch.setenv("WEIGHTPACK_REGISTRY_URL_STAGING", server.url)
    monkeypatch.setenv("WEIGHTPACK_RETRY_BASE_S", "0.01")
    monkeypatch.setenv("WEIGHTPACK_RETRY_MAX_S", "0.05")
    monkeypatch.setenv("WEIGHTPACK_RETRY_ATTEMPTS", "4")
    monkeypatch.setenv("WEIGHTPACK_HTTP_TIMEOUT_S", "5")
    try:
        yield server
    finally:
        server.stop()
