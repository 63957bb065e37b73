"""The consumer's own weights provider reads the registry ``pack registry serve`` runs (issue 20.6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.consumer import bridge
from tests.test_registry_serve import MODEL_ID, SECRET, register, serving


@pytest.mark.slow
def test_the_consumers_weights_provider_reads_the_served_registry(consumer, tmp_path: Path) -> None:
    with serving(tmp_path / "registry", tmp_path) as (url, _):
        package_id, md5 = register(url, tmp_path)
        answer = bridge.ask("resolve", {"model_id": MODEL_ID, "api_host": url, "api_key": SECRET})
    assert answer["model_architecture"] == "pp-ocrv6-det"
    assert answer["packages"] == [
        {"package_id": package_id, "backend": "onnx", "files": {"inference.onnx": md5}}
    ]
