"""A registry answer is hostile data too (issue 25 probes): ``pack verify-remote`` against a registry that
answers a list, garbage, a 100000-deep array or a package whose files are no objects refuses it with exit 2
naming the field; it raised TypeError, KeyError, AttributeError or RecursionError ('unexpected', exit 1). A
``downloadUrl`` that is no http(s) URL (``file:///etc/passwd``) is refused as hostile data, not retried."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from packager import cli


def package(files: list) -> dict:
    manifest = {"backendType": "onnx"}
    return {"modelMetadata": {"modelId": "a/b", "modelPackages": [
        {"packageId": "p1", "packageManifest": manifest, "packageFiles": files}]}}  # fmt: skip


ANSWERS = {
    "a-list": (b"[1, 2]", "the answer is a list, not an object"),
    "not-json": (b"<html>", "is not JSON a client can read (JSONDecodeError)"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "is not JSON a client can read (RecursionError)"),
    "no-metadata": (b'{"x": 1}', "modelMetadata is NoneType, not an object"),
    "packages-int": (b'{"modelMetadata": {"modelPackages": 5}}', "modelPackages is int, not a list"),
    "package-str": (
        b'{"modelMetadata": {"modelPackages": ["a"]}}',
        "modelPackages[0] is a string, not an object",
    ),
    "files-str": (json.dumps(package(["x"])).encode(), "packageFiles[0] is a string, not an object"),
    "handle-int": (json.dumps(package([{"fileHandle": 5}])).encode(), "fileHandle is int, not a string"),
    "file-url": (
        json.dumps(
            package(
                [{"fileHandle": "weights.onnx", "downloadUrl": "file:///etc/passwd", "md5Hash": "0" * 32}]
            )
        ).encode(),
        "downloadUrl 'file:///etc/passwd' is not an http(s) URL",
    ),
}


@pytest.fixture
def registry() -> Iterator[tuple[str, dict]]:
    """A registry on loopback that answers every GET with ``state["body"]``."""
    state: dict = {"body": b"{}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state["body"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", list(ANSWERS))
def test_a_malformed_registry_answer_is_refused_with_exit_2(
    name: str, registry, tmp_path: Path, monkeypatch
) -> None:
    url, state = registry
    state["body"], message = ANSWERS[name]
    monkeypatch.setenv("MODELS_SERVICE_INTERNAL_SECRET", "s3cr3t-0123456789")
    monkeypatch.setenv("WEIGHTPACK_RETRY_ATTEMPTS", "1")
    goldens = tmp_path / "goldens.npz"
    np.savez(goldens, **{"input/x": np.zeros(2), "output/y": np.zeros(2)})
    text = io.StringIO()
    with contextlib.redirect_stderr(text), contextlib.redirect_stdout(text):
        code = cli.main(
            ["verify-remote", "a/b", "--registry-url", url, "--goldens", str(goldens), "--consumer", "skip"]
        )
    assert code == 2 and message in text.getvalue(), text.getvalue()[-2000:]
    assert "unexpected" not in text.getvalue()
