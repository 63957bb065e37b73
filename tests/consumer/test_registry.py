"""The loopback registry is as strict as the real service and client (alphanumeric package ids, the
``type`` fields of registration answers, several pages read with ``startAfter``), and both weightpack's
client and the consumer's own weights provider read every page of it."""

from __future__ import annotations

import re

import pytest

from packager.consumer import bridge
from packager.publish.errors import PublishError
from packager.publish.http import RetryPolicy
from packager.publish.registry import RegistryClient, model_register_path
from packager.publish.secret import Secret
from tests.servers.registry import Package

MODEL_ID = "conformance-net/tiny"
ONNX = {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "opset": 17,
        "dynamicBatchSize": True}  # fmt: skip


def add_packages(server, count: int) -> list[str]:
    """``count`` sealed packages of MODEL_ID, registered straight into the server's state."""
    server.models[MODEL_ID] = {"modelId": MODEL_ID, "modelArchitecture": "conformance-net",
                               "modelVariant": "tiny", "taskType": "classification"}  # fmt: skip
    ids = []
    for i in range(count):
        package = Package(server.new_package_id(), MODEL_ID, dict(ONNX, opset=11 + i), ["weights.onnx"], {})
        package.sealed, package.md5 = True, {"weights.onnx": f"{i:032x}"}
        server.packages[package.id] = package
        ids.append(package.id)
    return ids


def client(server) -> RegistryClient:
    return RegistryClient(server.url, Secret(server.secret), RetryPolicy.from_env())


def test_package_ids_are_alphanumeric(registry_server):
    ids = add_packages(registry_server, 3)
    assert all(re.fullmatch(r"[A-Za-z0-9]+", i) for i in ids), ids


def test_client_reads_every_page_with_start_after(registry_server):
    registry_server.page_size = 2
    ids = add_packages(registry_server, 5)
    meta = client(registry_server).weights(MODEL_ID)
    assert [p["packageId"] for p in meta["modelPackages"]] == sorted(ids)
    pages = [r.path for r in registry_server.requests if r.path.startswith("/models/v1/external/weights")]
    assert len(pages) == 3 and "startAfter=" in pages[1] and "startAfter=" in pages[2]


def test_unknown_query_parameters_are_refused(registry_server):
    """The old client's ``pageToken`` is not a parameter of the service: it must not pass silently."""
    add_packages(registry_server, 1)
    import requests

    r = requests.get(
        f"{registry_server.url}/models/v1/external/weights",
        params={"modelId": MODEL_ID, "pageToken": "x"},
        headers={"Authorization": f"Bearer {registry_server.secret}"},
        timeout=10,
    )
    assert r.status_code == 400 and "pageToken" in r.json()["error"]


def test_registration_answer_carries_the_public_clients_type_fields(registry_server):
    registry_server.models[MODEL_ID] = {"modelId": MODEL_ID}
    answer = client(registry_server).register_package(
        {"modelId": MODEL_ID, "packageManifest": ONNX, "fileHandles": ["weights.onnx"], "modelFeatures": {}}
    )
    [spec] = answer["filesUploadSpecs"]
    assert spec["type"] == "external-file-upload-specs-v1"
    assert spec["signedUrlDetails"]["type"] == "signed-url-details-v1"
    assert re.fullmatch(r"[A-Za-z0-9]+", answer["modelPackageId"])


def test_client_refuses_an_answer_without_type_fields(registry_server):
    registry_server.models[MODEL_ID] = {"modelId": MODEL_ID}
    registry_server.untyped_answers = True
    with pytest.raises(PublishError, match=r"filesUploadSpecs\[0\]\.type: expected 'external-file-upload-"):
        client(registry_server).register_package(
            {"modelId": MODEL_ID, "packageManifest": ONNX, "fileHandles": ["w.onnx"], "modelFeatures": {}}
        )


@pytest.mark.slow
def test_consumer_weights_provider_reads_every_page(consumer, registry_server):
    registry_server.page_size = 2
    ids = add_packages(registry_server, 5)
    answer = bridge.ask(
        "resolve", {"model_id": MODEL_ID, "api_host": registry_server.url, "api_key": registry_server.secret}
    )
    assert sorted(p["package_id"] for p in answer["packages"]) == sorted(ids)
    assert {p["backend"] for p in answer["packages"]} == {"onnx"}
    assert answer["model_architecture"] == "conformance-net"
    pages = [r.path for r in registry_server.requests if r.path.startswith("/models/v1/external/weights")]
    assert len(pages) == 3 and all("startAfter=" in p for p in pages[1:])


BODY = {"modelId": MODEL_ID, "modelArchitecture": "conformance-net", "modelVariant": "tiny",
        "taskType": "classification", "access": "public"}  # fmt: skip


def test_model_registration_path_is_configurable(registry_server, monkeypatch):
    registry_server.model_register_path = "/internal/models/create"
    monkeypatch.setenv("WEIGHTPACK_MODEL_REGISTER_PATH", "/internal/models/create")
    c = RegistryClient(
        registry_server.url, Secret(registry_server.secret), model_register=model_register_path()
    )
    assert c.register_model(BODY) is True and c.register_model(BODY) is False  # created, then 409
    assert [r.path for r in registry_server.requests] == ["/internal/models/create"] * 2


def test_model_registration_can_be_skipped(registry_server):
    """With no such endpoint on the service, a model that exists is published without it."""
    registry_server.model_register_path = None
    registry_server.models[MODEL_ID] = BODY
    c = RegistryClient(
        registry_server.url, Secret(registry_server.secret), model_register=model_register_path(skip=True)
    )
    assert c.register_model(BODY) is None and registry_server.requests == []
    assert c.register_package(
        {"modelId": MODEL_ID, "packageManifest": ONNX, "fileHandles": ["weights.onnx"], "modelFeatures": {}}
    )["modelPackageId"]


def test_model_registration_path_none_and_bad(monkeypatch):
    monkeypatch.setenv("WEIGHTPACK_MODEL_REGISTER_PATH", "none")
    assert model_register_path() is None
    assert model_register_path("/x/register") == "/x/register"
    with pytest.raises(PublishError, match="model registration path 'x/register' must start with '/'"):
        model_register_path("x/register")
