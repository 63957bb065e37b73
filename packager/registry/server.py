"""The registry's HTTP service: the endpoints of docs/publish.md, as strict as the real service and client.

Routes: ``POST /models/v1/external/model-packages/register`` (signed upload URLs pointing back here),
``PUT /upload/<token>`` (the signed URL: no Authorization header, the signed extension headers required),
``POST /models/v1/external/model-packages/artefacts/confirm`` (every file's md5 checked, then sealed),
``GET /models/v1/external/weights?modelId=`` (sealed packages, ``pageSize`` a page, the next one asked with
``startAfter``; unknown query parameters refused), the model-registration path (an assumption, see
docs/publish.md; ``None``: no such route) and ``GET /files/<package id>/<handle>`` (the download URLs).
Every route but uploads and downloads needs ``Authorization: Bearer <secret>``.

A subclass may inject failures: :meth:`RegistryHandler.intercept` answers (or drops) a request before the
service does, :meth:`RegistryServer.file_record` shapes what the weights endpoint lists for a file,
:meth:`RegistryServer.download_url` where it is downloaded from, :meth:`RegistryServer.record` sees every
request (tests/servers/registry.py does all four).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .state import MAX_FILE_SIZE, Files, Package, RegistryState

MODEL_REGISTER_PATH = "/models/v1/external/models/register"
PACKAGE_REGISTER_PATH = "/models/v1/external/model-packages/register"
CONFIRM_PATH = "/models/v1/external/model-packages/artefacts/confirm"
WEIGHTS_PATH = "/models/v1/external/weights"
WEIGHTS_PARAMS = {"modelId", "startAfter", "pageSize", "includeCoreMLPackages"}
DEFAULT_PAGE_SIZE = 50


class RegistryServer(RegistryState):
    """The service on a :class:`RegistryState`; ``start()`` serves it from a daemon thread,
    ``serve_forever()`` in the calling one."""

    def __init__(self, secret: str, root: Path | None = None, files: Files | None = None) -> None:
        super().__init__(root, files)
        self.secret = secret
        self.page_size = DEFAULT_PAGE_SIZE
        self.model_register_path: str | None = MODEL_REGISTER_PATH
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ serving

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> RegistryServer:
        handler = type("Handler", (self.handler_class,), {"app": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        return self

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RegistryServer:
        self.bind(host, port)
        assert self._httpd is not None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        assert self._httpd is not None, "bind() first"
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:  # served from our thread: stop it (serve_forever stops on ^C)
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ hooks

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        """Every request, before it is answered (a no-op here)."""

    def download_url(self, package: Package, handle: str) -> str:
        return f"{self.url}/files/{package.id}/{quote(handle)}"

    def file_record(self, package: Package, handle: str) -> dict[str, Any]:
        """What the weights endpoint lists for one file of a sealed package."""
        return {
            "fileHandle": handle,
            "downloadUrl": self.download_url(package, handle),
            "md5Hash": package.md5[handle],
        }

    def upload_spec(self, package: Package, handle: str) -> dict[str, Any]:
        token = self.upload_token(package.id, handle)
        return {
            "type": "external-file-upload-specs-v1",
            "fileHandle": handle,
            "signedUrlDetails": {
                "type": "signed-url-details-v1",
                "uploadUrl": f"{self.url}/upload/{token}?X-Goog-Signature=local",
                "method": "PUT",
                "extensionHeaders": {"X-Goog-Content-Length-Range": f"0,{MAX_FILE_SIZE}"},
                "maxFileSize": MAX_FILE_SIZE,
            },
        }

    def weights_page(self, model_id: str, start_after: str, page_size: int) -> dict[str, Any]:
        model = self.models[model_id]
        listed = sorted(self.sealed(model_id), key=lambda p: p.id)
        remaining = [p for p in listed if p.id > start_after] if start_after else listed
        page = remaining[:page_size]
        packages = [
            {
                "type": "external-model-package-v1",
                "packageId": p.id,
                "packageManifest": p.manifest,
                "modelFeatures": p.features,
                "trustedSource": True,
                "packageFiles": [self.file_record(p, h) for h in p.handles],
            }
            for p in page
        ]
        return {
            "modelMetadata": {
                "type": "external-model-metadata-v1",
                "modelId": model_id,
                "modelArchitecture": model["modelArchitecture"],
                "modelVariant": model["modelVariant"],
                "taskType": model["taskType"],
                "modelPackages": packages,
                "nextPage": page[-1].id if len(remaining) > page_size else None,
            }
        }


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end inclusive)`` of a single ``bytes=a-b`` (or ``bytes=-n``) range within ``size``; None
    when absent, malformed or unsatisfiable (then the whole file is sent)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or not (match.group(1) or match.group(2)) or size == 0:
        return None
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
    else:
        start, end = max(0, size - int(match.group(2))), size - 1
    return (start, end) if start <= end else None


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: RegistryServer

    def log_message(self, format: str, *args: object) -> None:  # quiet: the CLI says what it serves
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that timed out
            super().handle()

    def intercept(self, route: str, body_read: bool, handle: str | None = None) -> Any:
        """Answer a request before the service does: True when answered (or dropped); anything else is
        handed to :meth:`stored_bytes` for uploads. Here: never."""
        return None

    def stored_bytes(self, data: bytes, intercepted: Any) -> bytes:
        """The bytes an upload stores (a subclass may corrupt them)."""
        return data

    def send_body(self, status: int, body: bytes, headers: dict[str, str], length: int | None = None) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.app.secret}":
            return True
        self._read()
        self._json(401, {"error": "missing or wrong service secret"})
        return False

    def _record(self, method: str) -> None:
        self.app.record(method, self.path, {k.lower(): v for k, v in self.headers.items()})

    def do_GET(self) -> None:
        self._record("GET")
        parts = urlsplit(self.path)
        if parts.path.startswith("/files/"):
            return self._download(unquote(parts.path.removeprefix("/files/")))
        if parts.path != WEIGHTS_PATH:
            return self._json(404, {"error": f"no route {parts.path}"})
        if self.intercept("weights", True) is True or not self._authorized():
            return None
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - WEIGHTS_PARAMS)
        if unknown:
            return self._json(400, {"error": f"unknown query parameters {unknown}"})
        model_id = (query.get("modelId") or [""])[0]
        try:
            page_size = int((query.get("pageSize") or [self.app.page_size])[0])
        except ValueError:
            return self._json(400, {"error": "pageSize must be an integer"})
        with self.app.state_lock:
            if model_id not in self.app.models:
                return self._json(404, {"error": f"model {model_id} not found"})
            answer = self.app.weights_page(model_id, (query.get("startAfter") or [""])[0], max(1, page_size))
        return self._json(200, answer)

    def _download(self, name: str, head: bool = False) -> None:
        """A sealed package's file; ``Range: bytes=a-b`` answered 206 (the consumer downloads large
        files in parallel ranges when ``Accept-Ranges`` says it may)."""
        package_id, _, handle = name.partition("/")
        package = self.app.packages.get(package_id)
        data = None
        if package is not None and package.sealed and handle in package.handles:
            data = self.app.files.get(self.app.object_name(package_id, handle))
        if data is None:
            return self._json(404, {"error": f"no file {name}"})
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        wanted = byte_range(self.headers.get("Range"), len(data))
        status = 200
        if wanted is not None:
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return self.send_body(status, b"" if head else data, headers, length=len(data))

    def do_HEAD(self) -> None:
        self._record("HEAD")
        parts = urlsplit(self.path)
        if not parts.path.startswith("/files/"):
            return self.send_body(404, b"", {}, length=0)
        return self._download(unquote(parts.path.removeprefix("/files/")), head=True)

    def do_POST(self) -> None:
        self._record("POST")
        routes = {PACKAGE_REGISTER_PATH: "package", CONFIRM_PATH: "confirm"}
        if self.app.model_register_path:
            routes[self.app.model_register_path] = "model"
        if self.path not in routes:
            self._read()
            return self._json(404, {"error": f"no route {self.path}"})
        route = routes[self.path]
        if self.intercept(route, False) is True or not self._authorized():
            return None
        try:
            body = json.loads(self._read() or b"null")
        except ValueError:
            return self._json(400, {"error": "body is not JSON"})
        if not isinstance(body, dict):
            return self._json(400, {"error": "body must be a JSON object"})
        with self.app.state_lock:
            if route == "model":
                status, answer = self.app.register_model(body)
            elif route == "confirm":
                status, answer = self.app.confirm(body)
            else:
                status, answer = self.app.register_package(body)
                if isinstance(answer, Package):
                    specs = [self.app.upload_spec(answer, h) for h in answer.handles]
                    answer = {
                        "modelId": answer.model_id,
                        "modelPackageId": answer.id,
                        "filesUploadSpecs": specs,
                    }
            self.app.save()
        return self._json(status, answer)

    def do_PUT(self) -> None:
        self._record("PUT")
        token = urlsplit(self.path).path.removeprefix("/upload/")
        with self.app.state_lock:
            target = self.app.tokens.get(token)
        if target is None:
            self._read()
            return self._json(403, {"error": "invalid or expired signature"})
        package_id, handle = target
        intercepted = self.intercept("upload", False, handle)
        if intercepted is True:
            return None
        if self.headers.get("X-Goog-Content-Length-Range") != f"0,{MAX_FILE_SIZE}":
            self._read()
            return self._json(400, {"error": "the signed extension headers were not sent"})
        if self.headers.get("Authorization"):
            self._read()
            return self._json(400, {"error": "signed URLs take no Authorization header"})
        if int(self.headers.get("Content-Length") or 0) > MAX_FILE_SIZE:
            return self._json(413, {"error": f"more than {MAX_FILE_SIZE} bytes"})
        data = self._read()
        if self.app.packages[package_id].sealed:
            return self._json(403, {"error": "package is sealed"})
        data = self.stored_bytes(data, intercepted)
        self.app.files.put(self.app.object_name(package_id, handle), data)
        etag = base64.b64encode(hashlib.md5(data).digest()).decode()
        return self.send_body(200, b"", {"ETag": etag})


RegistryServer.handler_class = RegistryHandler
