"""A models-service registry and a GCS emulator on loopback, for the publish tests.

The registry is the product's own (``pack registry serve``, :mod:`packager.registry`), kept in memory with
its files in the emulator, plus failure injection.

``gcs_emulator``: ``gcp-storage-emulator`` in-process on a free 127.0.0.1 port (in memory, bucket
``weightpack-test``), one for the session, emptied for each test, with ``STORAGE_EMULATOR_HOST`` set so the
real google-cloud-storage client talks to it.

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

import contextlib
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests

from packager.registry import server as registry_server
from packager.registry.state import Package

from ._base import Request

BUCKET = "weightpack-test"
MODEL_REGISTER_PATH = registry_server.MODEL_REGISTER_PATH
BLOCK_MAX_S = 120.0


class GcsEmulator:
    def __init__(self, bucket: str = BUCKET) -> None:
        from gcp_storage_emulator import server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        # its server answers one connection at a time: a client that dies mid-request (a killed pack) must
        # not hold it, and every later test of the session, for ever
        server.RequestHandler.timeout = 30
        create_server = server.create_server
        self.bucket = bucket
        self._server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)

    def start(self) -> GcsEmulator:
        self._server.start()
        host, port = self._server._api._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def wipe(self) -> None:
        """Forget every object (the bucket stays)."""
        self._server.wipe(keep_buckets=True)

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


class EmulatorFiles:
    """The registry's package files kept in the GCS emulator (downloads are served from there)."""

    def __init__(self, emulator: GcsEmulator) -> None:
        self.emulator = emulator

    def put(self, name: str, data: bytes) -> None:
        self.emulator.put(name, data)

    def get(self, name: str) -> bytes | None:
        return self.emulator.get(name)


class RegistryServer(registry_server.RegistryServer):
    """The product's registry (``pack registry serve``), in memory, its files in the GCS emulator, every
    request recorded, with failure injection (:meth:`fail`) and the knobs the tests turn."""

    def __init__(self, emulator: GcsEmulator, secret: str) -> None:
        super().__init__(secret, files=EmulatorFiles(emulator))
        self.emulator = emulator
        self.requests: list[Request] = []
        self._requests_lock = threading.Lock()
        self.rules: list[Rule] = []
        self.omit_md5: set[str] = set()  # file handles listed without md5Hash by the weights endpoint
        self.declared_sizes: dict[str, Any] = {}  # file handle -> the "size" the weights endpoint lists
        self.page_size = 2  # small, so that any test with three packages reads several pages
        self.untyped_answers = False  # answer registrations without the type fields (an old service)
        self.env: dict[str, str] = {}  # what a child process needs to use it (set by the fixture)

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._requests_lock:
            self.requests.append(Request(method, path, headers))

    def count(self, method: str | None = None, path_regex: str = "") -> int:
        with self._requests_lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and re.search(path_regex, r.path)
            )

    def download_url(self, package: Package, handle: str) -> str:
        emu = self.emulator
        return f"{emu.url}/{emu.bucket}/{quote(self.object_name(package.id, handle))}"

    def file_record(self, package: Package, handle: str) -> dict[str, Any]:
        record = super().file_record(package, handle)
        if handle in self.omit_md5:
            del record["md5Hash"]
        if handle in self.declared_sizes:
            record["size"] = self.declared_sizes[handle]
        return record

    def upload_spec(self, package: Package, handle: str) -> dict[str, Any]:
        spec = super().upload_spec(package, handle)
        if self.untyped_answers:
            del spec["type"], spec["signedUrlDetails"]["type"]
        return spec

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


class _RegistryHandler(registry_server.RegistryHandler):
    app: RegistryServer

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def intercept(self, route: str, body_read: bool, handle: str | None = None) -> Any:
        """Apply a failure rule: True when the request has been answered (or dropped); the rule itself
        (for a corrupting upload) otherwise."""
        rule = self.app.take_rule(route, handle)
        if rule is None:
            return None
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
        return rule

    def stored_bytes(self, data: bytes, intercepted: Any) -> bytes:
        if isinstance(intercepted, Rule) and intercepted.corrupt:
            return bytes([data[0] ^ 0xFF]) + data[1:] if data else b"x"
        return data


RegistryServer.handler_class = _RegistryHandler


@pytest.fixture(scope="session")
def gcs_emulator_session() -> Iterator[GcsEmulator]:
    """One emulator for the whole session (each stop waits for its server's half-second poll)."""
    emulator = GcsEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gcs_emulator(gcs_emulator_session: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The session's emulator, emptied for this test (its bucket kept, no object left of an earlier test),
    with ``STORAGE_EMULATOR_HOST`` pointing at it."""
    gcs_emulator_session.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_session.url)
    return gcs_emulator_session


@pytest.fixture
def registry_server(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryServer]:
    """The registry on loopback; the secret is in ``MODELS_SERVICE_INTERNAL_SECRET``, the URL in
    ``WEIGHTPACK_REGISTRY_URL_STAGING``, and retries are short. ``.env`` holds these settings (and the
    emulator's) for a child process (tests.packs.pack_process(..., env=registry_server.env))."""
    secret = "s3cr3t-" + secrets.token_hex(8)
    server = RegistryServer(gcs_emulator, secret).start()
    server.env = {
        "MODELS_SERVICE_INTERNAL_SECRET": secret,
        "WEIGHTPACK_REGISTRY_URL_STAGING": server.url,
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
        "WEIGHTPACK_RETRY_BASE_S": "0.01",
        "WEIGHTPACK_RETRY_MAX_S": "0.05",
        "WEIGHTPACK_RETRY_ATTEMPTS": "4",
        "WEIGHTPACK_HTTP_TIMEOUT_S": "5",
    }
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()
