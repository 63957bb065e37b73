"""A tiny static file server on loopback with Range support and a one-shot "drop the connection" switch."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ._base import LoopbackServer, QuietHandler, parse_range


class StaticServer(LoopbackServer):
    """Serve ``{path: bytes}``; ``url_for(path)`` gives the full URL (``http://127.0.0.1:<port>/<path>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, int] = {}
        self.refusals: dict[str, list[tuple[int, dict[str, str]]]] = {}

    def add(self, path: str, data: bytes) -> str:
        self.files[path.lstrip("/")] = data
        return self.url_for(path)

    def drop_once(self, path: str, after_bytes: int) -> None:
        """The next GET of ``path`` sends the full Content-Length but closes after ``after_bytes`` bytes."""
        self.drops[path.lstrip("/")] = after_bytes

    def refuse(self, path: str, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` answer ``status`` (with ``headers``, e.g. Retry-After)."""
        self.refusals.setdefault(path.lstrip("/"), []).extend([(status, headers or {})] * times)

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"


class _StaticHandler(QuietHandler):
    app: StaticServer

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _handle(self, head: bool) -> None:
        self.app.record(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        key = self.path.split("?", 1)[0].lstrip("/")
        data = self.app.files.get(key)
        refusals = self.app.refusals.get(key)
        if refusals and not head:
            status, headers = refusals.pop(0)
            return self.send_body(status, b"busy", {"Content-Type": "text/plain", **headers}, head)
        if data is None:
            return self.send_body(404, b"not found", {"Content-Type": "text/plain"}, head)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        status, body = 200, data
        rng = None if head else parse_range(self.headers.get("Range"), len(data))
        if rng is not None:
            start, end = rng
            if start >= len(data):
                return self.send_body(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        cut = None if head else self.app.drops.pop(key, None)
        if cut is None:
            return self.send_body(status, body, headers, head)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


StaticServer.handler_class = _StaticHandler


@pytest.fixture
def file_server() -> Iterator[StaticServer]:
    """A started :class:`StaticServer` (plain http on 127.0.0.1, which sources accept for loopback only)."""
    server = StaticServer().start()
    try:
        yield server
    finally:
        server.stop()
