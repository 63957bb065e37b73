"""``pack verify-remote`` as issue 20 asks: a model the consumer cannot load never reads PASSED (points 1
and 6), one package that cannot be loaded here fails alone instead of aborting the command (point 7), and
the command printed after registration runs as printed (point 6). Real MiniLM packages on the loopback
registry (the product's own, tests/servers/registry.py)."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest

from packager import cli
from tests.packs import copy_of
from tests.test_publish import MODEL_ID, fake_consumer, publish, sealed, verify_remote

CANNOT = "checks passed; inference-models cannot load this package"


@pytest.fixture
def out(minilm_pack_onnx: Path, tmp_path: Path) -> Path:
    return copy_of(minilm_pack_onnx, tmp_path)


def consumer_says_unregistered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTPACK_CONSUMER_PYTHON", str(fake_consumer(tmp_path)))
    monkeypatch.setenv("FAKE_CONSUMER_LOG", str(tmp_path / "consumer.jsonl"))
    monkeypatch.setenv("FAKE_CONSUMER_UNREGISTERED", "1")


def test_a_model_the_consumer_cannot_load_is_never_passed_silently(
    out, registry_server, tmp_path, monkeypatch
):
    """minilm's recipe declares it: exit 0, and every line says the consumer cannot load it."""
    assert publish(out, "--register", "--execute")[0] == 0
    consumer_says_unregistered(tmp_path, monkeypatch)
    code, text = verify_remote(out)
    assert code == 0, text
    [package] = sealed(registry_server)
    assert f"{MODEL_ID} package {package.id} [onnx]: {CANNOT}" in text and "PASSED" not in text
    assert "consumer: inference-models cannot load this package: inference-models ships no class" in text
    assert "as its recipe minilm.toml declares" in text
    code, text = verify_remote(out, "--json")
    [result] = json.JSONDecoder().raw_decode(text)[0]["packages"]
    assert result["verdict"] == CANNOT and result["consumer_loads"] is False and result["passed"]


def test_an_undeclared_model_the_consumer_cannot_load_fails(out, registry_server, tmp_path, monkeypatch):
    """Were minilm's recipe silent about it, the consumer's refusal is a failed check (exit 1)."""
    assert publish(out, "--register", "--execute")[0] == 0
    consumer_says_unregistered(tmp_path, monkeypatch)
    monkeypatch.setattr("packager.publish.verify_remote.recipe_of_architecture", lambda *_: None)
    code, text = verify_remote(out)
    assert code == 1, text
    assert ": FAILED" in text and "no recipe of this architecture declares that" in text
    assert "pass --consumer skip to check weightpack's own classes only" in text


def test_without_asking_the_consumer_the_recipes_word_is_printed(out, registry_server):
    assert publish(out, "--register", "--execute")[0] == 0
    code, text = verify_remote(out, "--consumer", "skip")
    assert code == 0 and CANNOT in text and "PASSED" not in text, text
    assert "inference-models cannot load this package: inference-models 0.39.6 ships no class" in text
    assert "(declared in minilm.toml)" in text


def test_a_package_that_cannot_be_loaded_here_fails_alone(out, registry_server, monkeypatch):
    """Point 7: a second package registered as torch (its files are not what pack built, so no recorded
    class: the torch class is tried and cannot load it). The command goes on, the ONNX package passes."""
    assert publish(out, "--register", "--execute")[0] == 0
    [onnx] = sealed(registry_server)
    torch_manifest = {**onnx.manifest, "type": "torch-model-package-v1", "backendType": "torch"}
    torch = registry_server.copy_package(
        onnx, manifest=torch_manifest, edit=lambda h, d: d + b" " * (h == "config.json")
    )
    data = registry_server.emulator.get(registry_server.object_name(torch.id, "config.json"))
    torch.md5 = {**torch.md5, "config.json": hashlib.md5(data).hexdigest()}
    code, text = verify_remote(out, "--consumer", "skip", "--json")
    assert code == 1, text
    results = {r["package_id"]: r for r in json.JSONDecoder().raw_decode(text)[0]["packages"]}
    assert results[onnx.id]["passed"]
    assert not results[torch.id]["passed"]
    assert any(d.startswith("FAILED to load or run: ") for d in results[torch.id]["details"]), results[
        torch.id
    ]


def test_the_command_printed_after_registration_runs(out, registry_server, monkeypatch):
    monkeypatch.delenv("WEIGHTPACK_REGISTRY_URL_STAGING")
    code, text = publish(out, "--register", "--execute", "--registry-url", registry_server.url)
    assert code == 0, text
    [line] = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("pack verify-remote")]
    assert "MODEL_ID" not in line
    argv = shlex.split(line)
    assert argv[:3] == ["pack", "verify-remote", MODEL_ID] and "--registry-url" in argv and "--out" in argv
    assert cli.main([*argv[1:], "--consumer", "skip"]) == 0
