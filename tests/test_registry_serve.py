"""``pack registry serve`` (issue 20.6): a local registry users can run, persistent on disk, that pack's
client, verify-remote's downloads and the consumer's own weights provider read. Run as a user would: the
console script in a subprocess, stopped with SIGTERM, started again on the same folder."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from packager.publish.http import RetryPolicy
from packager.publish.registry import RegistryClient
from packager.publish.secret import Secret
from tests.packs import pack_in_process, pack_popen, pack_process

ROOT = Path(__file__).resolve().parents[1]
SECRET = "local-" + "ab12" * 6
MODEL_ID = "pp-ocrv6-det/v4-ch"
MANIFEST = {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "opset": 17,
            "dynamicBatchSize": True}  # fmt: skip


@contextmanager
def serving(root: Path, tmp: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    ready = tmp / f"ready-{time.monotonic_ns()}"
    args = ["registry", "serve", "--root", str(root), "--port", "0", "--ready-file", str(ready)]
    env = {"MODELS_SERVICE_INTERNAL_SECRET": SECRET}
    proc = pack_popen(*args, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.is_file():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the registry did not start within 60 s"
            time.sleep(0.05)
        yield ready.read_text().strip(), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def register(url: str, tmp: Path) -> tuple[str, str]:
    """One package of MODEL_ID with one file, registered, uploaded and sealed through pack's own client."""
    client = RegistryClient(url, Secret(SECRET), RetryPolicy.from_env())
    model = {"modelId": MODEL_ID, "modelArchitecture": "pp-ocrv6-det", "modelVariant": "v4-ch"}
    assert client.register_model({**model, "taskType": "object-detection"}) is True
    answer = client.register_package(
        {
            "modelId": MODEL_ID,
            "packageManifest": MANIFEST,
            "fileHandles": ["inference.onnx"],
            "modelFeatures": {},
        }
    )
    data = tmp / "inference.onnx"
    data.write_bytes(b"not really a graph " * 100)
    md5 = hashlib.md5(data.read_bytes()).hexdigest()
    [spec] = answer["filesUploadSpecs"]
    assert client.upload(spec, data, "inference.onnx") == md5
    client.confirm(MODEL_ID, answer["modelPackageId"], [{"fileHandle": "inference.onnx", "md5Hash": md5}])
    return answer["modelPackageId"], md5


@pytest.mark.slow
def test_serve_registers_lists_and_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    with serving(root, tmp_path) as (url, proc):
        package_id, md5 = register(url, tmp_path)
        meta = RegistryClient(url, Secret(SECRET), RetryPolicy.from_env()).weights(MODEL_ID)
        unauthorised = requests.get(
            f"{url}/models/v1/external/weights", params={"modelId": MODEL_ID}, timeout=10
        )
        assert unauthorised.status_code == 401
    assert proc.returncode == 0  # SIGTERM: stopped cleanly
    out = proc.stdout.read()
    assert f"serving {url}" in out and "ROBOFLOW_API_HOST=" in out and SECRET not in out
    [listed] = meta["modelPackages"]
    assert listed["packageId"] == package_id and package_id.isalnum()
    with serving(root, tmp_path) as (url, _):  # a new process on the same folder: still there
        meta = RegistryClient(url, Secret(SECRET), RetryPolicy.from_env()).weights(MODEL_ID)
        [listed] = meta["modelPackages"]
        [record] = listed["packageFiles"]
        assert record["md5Hash"] == md5
        body = requests.get(record["downloadUrl"], timeout=10).content
        assert hashlib.md5(body).hexdigest() == md5
        head = requests.head(record["downloadUrl"], timeout=10)  # what the consumer asks before ranges
        assert head.headers["Accept-Ranges"] == "bytes" and int(head.headers["Content-Length"]) == len(body)
        part = requests.get(record["downloadUrl"], headers={"Range": "bytes=5-14"}, timeout=10)
        assert part.status_code == 206 and part.content == body[5:15]
        assert part.headers["Content-Range"] == f"bytes 5-14/{len(body)}"
    listing = pack_in_process("registry", "list", "--root", str(root))
    assert listing.returncode == 0, listing.stderr
    assert f"{MODEL_ID} (pp-ocrv6-det, object-detection)" in listing.stdout
    assert f"{package_id} [onnx] sealed: inference.onnx" in listing.stdout


@pytest.mark.slow
def test_serve_without_a_secret_is_an_environment_error(tmp_path: Path) -> None:
    """The child's environment has no secret: tests.hermetic keeps the caller's out."""
    serve = ["registry", "serve", "--root", str(tmp_path / "r"), "--port", "0"]
    proc = pack_process(*serve, cwd=tmp_path, timeout=60)  # a process: were it to serve, the timeout ends it
    assert proc.returncode == 3
    assert "set the environment variable MODELS_SERVICE_INTERNAL_SECRET" in proc.stderr
    bad = pack_in_process("registry", "list", "--root", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "no registry here (no registry.json)" in bad.stderr
