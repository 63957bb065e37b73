"""Publishing on loopback: real MiniLM packages, gcp-storage-emulator through google-cloud-storage, and the
registry server of tests/servers/registry.py with injected failures."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from packager import cli
from tests.packs import copy_of, publish

MODEL_ID = "all-minilm/l6"
ZIP = "all-minilm-l6-onnx.zip"
GS = "gs://weightpack-test/rf-platform-models"


@pytest.fixture
def out(minilm_pack_onnx: Path, tmp_path: Path) -> Path:
    """A private copy of the session's pack output (tests modify it)."""
    return copy_of(minilm_pack_onnx, tmp_path)


def verify_remote(out: Path, *flags: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli.main(["verify-remote", MODEL_ID, "--env", "staging", "--out", str(out), *flags])
    return code, buffer.getvalue()


def manifest(out: Path) -> dict:
    return json.loads((out / ZIP.replace(".zip", ".manifest.json")).read_text())


def sealed(registry) -> list:
    return registry.sealed(MODEL_ID)


# -- dry run, gate, safeguards --------------------------------------------------------------------------


def test_dry_run_prints_the_exact_plan_and_changes_nothing(out, registry_server, gcs_emulator):
    code, text = publish(out, "--upload", GS, "--register")
    assert code == 0, text
    m = manifest(out)
    assert "dry run" in text and MODEL_ID in text and f"{GS}/{ZIP}" in text
    assert m["zip"]["md5"] in text and m["zip"]["sha256"] in text and str(m["zip"]["size"]) in text
    for f in m["files"]:
        assert f"{f['path']}  {f['size']} bytes  md5 {f['md5']}" in text
    assert json.dumps(m["packageManifest"], sort_keys=True) in text
    assert gcs_emulator.names() == []
    assert registry_server.requests == []
    assert not list(out.glob("publish-state.*"))


def test_production_without_yes_is_refused(out, registry_server, gcs_emulator):
    url = registry_server.url
    code, text = publish(
        out, "--upload", GS, "--register", "--env", "production", "--registry-url", url, "--execute"
    )
    assert code == 2 and "--yes" in text
    assert gcs_emulator.names() == [] and registry_server.requests == []


def test_missing_secret_changes_nothing(out, registry_server, gcs_emulator, monkeypatch):
    monkeypatch.delenv("MODELS_SERVICE_INTERNAL_SECRET")
    code, text = publish(out, "--upload", GS, "--register", "--execute")
    assert code == 3 and "MODELS_SERVICE_INTERNAL_SECRET" in text
    assert gcs_emulator.names() == [] and registry_server.requests == []


def test_failed_parity_report_is_never_published(out, registry_server, gcs_emulator):
    report = json.loads((out / "report.json").read_text())
    report["parity"][0]["passed"] = False
    (out / "report.json").write_text(json.dumps(report))
    code, text = publish(out, "--upload", GS, "--register", "--execute")
    assert code == 1 and "parity" in text
    assert gcs_emulator.names() == [] and registry_server.requests == []


def test_failed_pack_never_reaches_publish(out, registry_server, gcs_emulator, tmp_path):
    """The real CLI: a recipe whose tolerances the package cannot meet fails the pack; nothing is sent."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (Path(cli.__file__).parents[1] / "recipes" / "minilm.toml").read_text()
    text = text.replace("atol = 1e-5\nrtol = 1e-4", "atol = 0.0\nrtol = 0.0")
    (recipes / "minilm.toml").write_text(text)
    argv = ["minilm", "--recipes", str(recipes), "--variants", "l6", "--backends", "onnx", "--no-latency"]
    code = cli.main([*argv, "--quiet", "--out", str(out), "--upload", GS, "--register", "--execute"])
    assert code == 1
    assert gcs_emulator.names() == [] and registry_server.requests == []


def test_zip_modified_after_verification_is_never_published(out, registry_server, gcs_emulator):
    with open(out / ZIP, "ab") as handle:
        handle.write(b"\0")
    code, text = publish(out, "--upload", GS, "--register", "--execute")
    assert code == 1 and "not the verified one" in text
    assert gcs_emulator.names() == [] and registry_server.requests == []


# -- upload ---------------------------------------------------------------------------------------------


def test_file_store_upload_is_idempotent_and_never_overwrites_without_force(out, tmp_path):
    store = tmp_path / "store"
    code, text = publish(out, "--upload", store.as_uri(), "--execute")
    assert code == 0 and "uploaded" in text
    assert (store / ZIP).read_bytes() == (out / ZIP).read_bytes()
    code, text = publish(out, "--upload", store.as_uri(), "--execute")
    assert code == 0 and "identical content; not uploaded again" in text
    (store / ZIP).write_bytes(b"something else")
    code, text = publish(out, "--upload", store.as_uri(), "--execute")
    assert code == 1 and "--force" in text and (store / ZIP).read_bytes() == b"something else"
    code, text = publish(out, "--upload", store.as_uri(), "--execute", "--force")
    assert code == 0 and "replaced" in text
    assert (store / ZIP).read_bytes() == (out / ZIP).read_bytes()


def test_gcs_upload_verifies_checksums_and_public_url(out, gcs_emulator):
    code, text = publish(out, "--upload", GS, "--execute")
    assert code == 0, text
    assert "md5/crc32c verified" in text and "public URL answers 200" in text
    blob = gcs_emulator.client().bucket(gcs_emulator.bucket).get_blob(f"rf-platform-models/{ZIP}")
    assert blob.size == manifest(out)["zip"]["size"]
    code, text = publish(out, "--upload", GS, "--execute")
    assert code == 0 and "not uploaded again" in text
    gcs_emulator.put(f"rf-platform-models/{ZIP}", b"different")
    code, text = publish(out, "--upload", GS, "--execute")
    assert code == 1 and "--force" in text
    assert gcs_emulator.get(f"rf-platform-models/{ZIP}") == b"different"


def test_gs_source_fetches_from_the_emulator(gcs_emulator, tmp_path):
    from packager.sources import fetch

    gcs_emulator.put("upstream/model.onnx", b"\x01\x02" * 1000)
    fetched = fetch(f"gs://{gcs_emulator.bucket}/upstream/model.onnx", cache_dir=tmp_path / "cache")
    assert fetched.provenance["kind"] == "gs"
    assert [(f["path"], f["size"]) for f in fetched.provenance["files"]] == [("model.onnx", 2000)]
    assert (fetched.path / "model.onnx").read_bytes() == b"\x01\x02" * 1000
    again = fetch(f"gs://{gcs_emulator.bucket}/upstream/model.onnx", cache_dir=tmp_path / "cache")
    assert again.provenance["files"] == fetched.provenance["files"]


# -- full flow and registration failures ----------------------------------------------------------------


def test_full_flow_pack_upload_register_verify_remote(out, registry_server, gcs_emulator, capsys, caplog):
    """The real CLI end to end (the pack reuses the verified zip), then verify-remote."""
    caplog.set_level(logging.DEBUG)
    argv = ["minilm", "--variants", "l6", "--backends", "onnx", "--no-latency", "--quiet", "--out", str(out)]
    code = cli.main([*argv, "--upload", GS, "--register", "--execute"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert gcs_emulator.names()[-1] == f"rf-platform-models/{ZIP}"
    [package] = sealed(registry_server)
    assert package.md5 == {f["path"]: f["md5"] for f in manifest(out)["files"]}
    assert not any("authorization" in r.headers for r in registry_server.requests if r.method == "PUT")
    code, text = verify_remote(out)
    assert code == 0, text
    assert "checks passed; inference-models cannot load this package" in text and "PASSED" not in text
    assert "sentence_embedding: ok" in text
    secret = registry_server.secret
    everything = captured.out + captured.err + text + caplog.text
    everything += "".join(p.read_text() for p in out.glob("*.json")) + (out / "report.md").read_text()
    assert secret not in everything
    # a re-run has nothing left to do
    code, text = publish(out, "--upload", GS, "--register", "--execute")
    assert code == 0 and "not uploaded again" in text and "already registered and sealed" in text


def test_409_on_an_identical_registered_package_is_success(out, registry_server):
    assert publish(out, "--register", "--execute")[0] == 0
    (out / "publish-state.staging.json").unlink()  # forget locally: the service answers 409
    code, text = publish(out, "--register", "--execute")
    assert code == 0 and "identical files (409)" in text
    assert len(sealed(registry_server)) == 1


def test_409_on_a_different_registered_package_fails(out, registry_server):
    assert publish(out, "--register", "--execute")[0] == 0
    [package] = sealed(registry_server)
    package.md5 = {h: "0" * 32 for h in package.md5}  # the registered files differ from ours
    (out / "publish-state.staging.json").unlink()
    code, text = publish(out, "--register", "--execute")
    assert code == 1 and "different package" in text


def test_transient_failures_are_retried(out, registry_server, monkeypatch):
    registry_server.fail("model", status=503, times=2)
    registry_server.fail("package", status=429, times=1)
    registry_server.fail("package", delay=2.0, times=1)  # the client times out; the service registered it
    registry_server.fail("upload", drop=True, times=1, handle="vocab.txt")  # dropped mid-upload
    registry_server.fail("confirm", status=500, times=1)
    monkeypatch.setenv("WEIGHTPACK_HTTP_TIMEOUT_S", "1.5")
    code, text = publish(out, "--register", "--execute")
    assert code == 0, text
    assert "retry" in text and len(sealed(registry_server)) == 1
    assert len(registry_server.packages) == 1  # the retried registration resumed the same package


def test_failure_part_way_leaves_it_unsealed_and_a_rerun_resumes(out, registry_server):
    registry_server.fail("upload", drop=True, times=100, handle="weights.onnx")
    code, text = publish(out, "--register", "--execute")
    assert code == 3  # the connection kept dropping: the network's (environment), not the package's
    assert "NOT sealed" in text and "To resume, re-run: pack minilm" in text and "--execute" in text
    assert sealed(registry_server) == []
    state = json.loads((out / "publish-state.staging.json").read_text())
    [entry] = state["packages"].values()
    assert not entry["sealed"] and "weights.onnx" not in entry["uploaded"] and len(entry["uploaded"]) == 10
    registry_server.rules.clear()
    before = registry_server.count("PUT")
    code, text = publish(out, "--register", "--execute")
    assert code == 0, text
    assert registry_server.count("PUT") - before == 1  # only the missing file
    assert len(sealed(registry_server)) == 1 and len(registry_server.packages) == 1


def test_wrong_bytes_are_never_sealed(out, registry_server):
    registry_server.fail("upload", corrupt=True, handle="config.json")
    code, text = publish(out, "--register", "--execute")
    assert code == 1 and "cannot seal" in text and "NOT sealed" in text
    assert sealed(registry_server) == []
    code, text = publish(out, "--register", "--execute")  # uploads everything again, then seals
    assert code == 0, text
    assert len(sealed(registry_server)) == 1


def test_missing_confirmation_is_never_sealed(out, registry_server):
    """The service refuses to seal when a file was never uploaded."""
    assert publish(out, "--register", "--execute", "--dry-run")[0] == 2  # contradictory flags
    registry_server.fail("upload", status=403, handle="modules.json")
    code, text = publish(out, "--register", "--execute")
    assert code == 1 and "403" in text and sealed(registry_server) == []


def test_secret_never_appears_in_output_logs_or_files(out, registry_server, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    registry_server.fail("model", status=500, times=1, echo_auth=True)  # retried: the retry line is printed
    registry_server.fail("package", status=400, times=1, echo_auth=True)  # final: the error is printed
    code, text = publish(out, "--register", "--execute")
    assert code == 1 and "400" in text and "***" in text
    captured = capsys.readouterr()
    files = "".join(p.read_text() for p in out.glob("*.json")) + (out / "report.md").read_text()
    everything = text + captured.out + captured.err + caplog.text + files
    assert registry_server.secret not in everything


# -- verify-remote failures -----------------------------------------------------------------------------


def test_verify_remote_detects_mismatch_and_missing_md5(out, registry_server, tmp_path):
    assert publish(out, "--register", "--execute")[0] == 0
    golden = out / "goldens" / "all-minilm-l6-reference.npz"
    with np.load(golden) as data:
        arrays = {k: data[k] for k in data.files}
    arrays = {
        k: (v + 0.5 if k.startswith("output/") and v.dtype.kind == "f" else v) for k, v in arrays.items()
    }
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    code, text = verify_remote(out, "--goldens", str(bad))
    assert code == 1 and "MISMATCH" in text
    registry_server.omit_md5 = {"config.json"}
    code, text = verify_remote(out)
    assert code == 2, text  # the registry's data is at fault: refused, not a failed check
    assert "refused: package " in text and "files without md5Hash: ['config.json']" in text
    assert "accepted: each file with an md5Hash of 32 lower-case hex digits" in text
    assert MODEL_ID not in recorded(out)
    registry_server.omit_md5 = set()
    [package] = sealed(registry_server)
    package.md5["vocab.txt"] = package.md5["vocab.txt"].upper()
    code, text = verify_remote(out)
    assert code == 2 and f"malformed md5Hash: vocab.txt: '{package.md5['vocab.txt']}'" in text, text


def recorded(out: Path) -> dict:
    """The models recorded as verified in staging (none when there is no record)."""
    path = out / "remote-verified.staging.json"
    return json.loads(path.read_text())["models"] if path.is_file() else {}


def file_sizes(out: Path) -> dict[str, int]:
    return {f["path"]: f["size"] for f in manifest(out)["files"]}


def test_verify_remote_caps_the_whole_package_declared_sizes_or_not(out, registry_server):
    """Every file fits under --max-extract-bytes, the package does not; the registry lists no sizes (or
    only some, which add up to less than the cap): refused while downloading, before anything is loaded."""
    assert publish(out, "--register", "--execute")[0] == 0
    sizes = file_sizes(out)
    cap = max(sizes.values()) + 1
    assert sum(sizes.values()) > cap
    for declared in ({}, {h: s for h, s in sizes.items() if s < cap - 1}):
        registry_server.declared_sizes = declared
        code, text = verify_remote(out, "--max-extract-bytes", str(cap), "--consumer", "skip")
        assert code == 2, text
        assert f"refused: package {sealed(registry_server)[0].id}: more than {cap} bytes in total" in text
        assert f"accepted: at most --max-extract-bytes {cap} for the whole package" in text
        assert "sentence_embedding" not in text and MODEL_ID not in recorded(out)


def test_verify_remote_holds_each_file_to_its_declared_size(out, registry_server):
    assert publish(out, "--register", "--execute")[0] == 0
    size = file_sizes(out)["config.json"]
    accepted = "accepted: exactly the size the registry declares for it"
    for declared, problem in (
        (size - 1, f"config.json: more than the {size - 1} bytes the registry declares ({accepted})"),
        (size + 1, f"config.json: {size} bytes received, the registry declares {size + 1} ({accepted})"),
        (-(2**41), "config.json: declared size -2199023255552 is not a whole number of bytes"),
        ("12kB", "config.json: declared size '12kB' is not a whole number of bytes"),
    ):
        registry_server.declared_sizes = {"config.json": declared}
        code, text = verify_remote(out, "--consumer", "skip")
        assert code == 2 and problem in text, text
        assert MODEL_ID not in recorded(out)
    registry_server.declared_sizes = {h: str(s) for h, s in file_sizes(out).items()}  # the truth passes
    code, text = verify_remote(out, "--consumer", "skip")
    assert code == 0 and "checks passed; inference-models cannot load this package" in text, text


FAKE_CONSUMER = """
import json, os, sys
import numpy as np

request = json.load(sys.stdin)
with open(os.environ["FAKE_CONSUMER_LOG"], "a") as log:
    log.write(json.dumps({"command": sys.argv[-1], "package_id": request.get("package_id")}) + "\\n")
if os.environ.get("FAKE_CONSUMER_UNREGISTERED"):
    print(json.dumps({"registered": False, "reason": "inference-models ships no class for [('all-minilm', "
                                                     "'embedding', 'onnx')]; the consumer cannot load it"}))
    sys.exit(0)
if request.get("package_id") in os.environ.get("FAKE_CONSUMER_NO_CLASS", "").split(","):
    print(json.dumps({"error": "ModelPackageAlternativesExhaustedError: error_type="
                               "ModelImplementationNotFoundError"}))
    sys.exit(0)
with np.load(request["inputs"]) as data:
    outputs = {k: data[k] for k in data.files if k.startswith("output/")}
if request.get("package_id") in os.environ.get("FAKE_CONSUMER_WRONG", "").split(","):
    outputs = {k: v + 1.0 if v.dtype.kind == "f" else v for k, v in outputs.items()}
np.savez(request["outputs"], **outputs)
print(json.dumps({"registered": True, "model_class": "fake_consumer:Model", "outputs": {}, "text": None}))
"""


def fake_consumer(tmp_path: Path) -> Path:
    """A stand-in for the consumer's python (``$WEIGHTPACK_CONSUMER_PYTHON``) answering ``auto-load`` as
    the probe does: the recorded outputs, shifted for the package ids in ``$FAKE_CONSUMER_WRONG``; the
    consumer's "no class" error for those in ``$FAKE_CONSUMER_NO_CLASS``; every request logged."""
    import sys

    script = tmp_path / "fake_consumer.py"
    script.write_text(FAKE_CONSUMER)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(0o755)
    return python


def test_verify_remote_asks_the_consumer_about_each_package(
    out, registry_server, gcs_emulator, tmp_path, monkeypatch
):
    """Three registered packages (two pages): the consumer is told each package's id, and each verdict
    goes to that package alone; one the consumer has no class for is reported, not failed."""
    assert publish(out, "--register", "--execute")[0] == 0
    [first] = sealed(registry_server)
    wrong, no_class = registry_server.copy_package(first), registry_server.copy_package(first)
    log = tmp_path / "consumer.jsonl"
    monkeypatch.setenv("WEIGHTPACK_CONSUMER_PYTHON", str(fake_consumer(tmp_path)))
    monkeypatch.setenv("FAKE_CONSUMER_LOG", str(log))
    monkeypatch.setenv("FAKE_CONSUMER_WRONG", wrong.id)
    monkeypatch.setenv("FAKE_CONSUMER_NO_CLASS", no_class.id)
    code, text = verify_remote(out, "--json")
    assert code == 1, text
    asked = [json.loads(line) for line in log.read_text().splitlines()]
    assert asked == [{"command": "auto-load", "package_id": p.id} for p in (first, wrong, no_class)]
    results = {r["package_id"]: r for r in json.JSONDecoder().raw_decode(text)[0]["packages"]}
    assert results[first.id]["passed"] and results[first.id]["consumer"]["passed"]
    assert results[first.id]["consumer"]["package_id"] == first.id
    assert (
        f"consumer: AutoModel loaded fake_consumer:Model (package {first.id})" in results[first.id]["details"]
    )
    assert not results[wrong.id]["passed"] and not results[wrong.id]["consumer"]["passed"]
    assert any(d.startswith("consumer sentence_embedding: MISMATCH") for d in results[wrong.id]["details"])
    assert results[wrong.id]["parity"] == results[first.id]["parity"]  # weightpack's own check passed
    assert results[no_class.id]["passed"] and not results[no_class.id]["consumer"]["gating"]
    assert any("ships no class for this package's backend" in d for d in results[no_class.id]["details"])
    assert recorded(out)[MODEL_ID]["onnx"]["package_id"] != wrong.id


def test_verify_remote_consumer_require_without_a_consumer_is_an_environment_error(
    tmp_path, monkeypatch, capsys
):
    from packager.consumer import bridge

    monkeypatch.setattr(bridge, "ROOT", tmp_path)  # no .venv-consumer beside this checkout
    monkeypatch.delenv("WEIGHTPACK_CONSUMER_PYTHON", raising=False)
    monkeypatch.setenv("MODELS_SERVICE_INTERNAL_SECRET", "s3cr3t-never-sent")
    golden = tmp_path / "reference.npz"
    np.savez(golden, **{"input/x": np.zeros(2), "output/y": np.zeros(2)})
    argv = ["verify-remote", MODEL_ID, "--registry-url", "http://127.0.0.1:9", "--goldens", str(golden)]
    assert cli.main([*argv, "--consumer", "require"]) == 3
    err = capsys.readouterr().err
    assert "--consumer require: the consumer (inference-models) is not installed" in err
    assert "scripts/setup_consumer.sh" in err and "accepted without it: --consumer auto or skip" in err


def test_verify_remote_help_names_every_exit_code_in_plain_words(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit, match="0"):
        cli.main(["verify-remote", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    declared = "(those the recipe declares not for inference-models say so)"
    assert f"Exit codes: 0 every package passed {declared}; 1 a check failed" in text
    assert "2 bad input (" in text and "a package refused as hostile data" in text
    assert "3 environment (the service secret is not set, or --consumer require" in text
    assert "130 interrupted" in text
    assert "consumer_check" not in text and ".py" not in text and "0 or 1" not in text


@pytest.mark.parametrize(
    "flag, env, source",
    [
        (["--model-register-path", "models/register"], {}, "--model-register-path"),
        ([], {"WEIGHTPACK_MODEL_REGISTER_PATH": "models/register"}, "$WEIGHTPACK_MODEL_REGISTER_PATH"),
    ],
)
def test_a_bad_model_register_path_is_refused_before_packing(
    out, registry_server, monkeypatch, capsys, flag, env, source
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = (out / "report.json").stat().st_mtime_ns
    argv = ["minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--register", "--execute", *flag]) == 2
    err = capsys.readouterr().err
    assert "model registration path 'models/register' must start with '/'" in err
    assert f"(from {source}; accepted: a path such as /models/v1/external/models/register, or 'none'" in err
    assert (out / "report.json").stat().st_mtime_ns == before  # not packed
    assert registry_server.requests == []


def test_verify_remote_extracts_a_zipped_package(out, registry_server, gcs_emulator):
    """A package registered as its single zip is downloaded, md5-checked and extracted with safe_extract."""
    import hashlib

    from tests.servers.registry import Package

    data = (out / ZIP).read_bytes()
    registry_server.models[MODEL_ID] = {
        "modelId": MODEL_ID,
        "modelArchitecture": "all-minilm",
        "modelVariant": "l6",
        "taskType": "embedding",
    }
    package = Package("pkg-zip", MODEL_ID, manifest(out)["packageManifest"], [ZIP], {}, sealed=True)
    package.md5 = {ZIP: hashlib.md5(data).hexdigest()}
    registry_server.packages[package.id] = package
    gcs_emulator.put(registry_server.object_name(package.id, ZIP), data)
    code, text = verify_remote(out)
    assert code == 0, text
    assert "pkg-zip" in text and "checks passed; inference-models cannot load this package" in text


# -- production only after staging verification ---------------------------------------------------------


@pytest.fixture
def production_server(registry_server, gcs_emulator):
    """A second registry on loopback standing for production (same secret, same emulator)."""
    from tests.servers.registry import RegistryServer

    server = RegistryServer(gcs_emulator, registry_server.secret).start()
    try:
        yield server
    finally:
        server.stop()


def production(out: Path, server, *flags: str) -> tuple[int, str]:
    return publish(out, "--register", "--env", "production", "--registry-url", server.url, *flags)


def test_production_without_staging_verification_is_refused(
    out, registry_server, production_server, gcs_emulator
):
    code, text = production(
        out, production_server, "--upload", GS
    )  # dry run: shows the status, sends nothing
    assert code == 0 and "staging: NOT verified in staging" in text
    code, text = production(out, production_server, "--upload", GS, "--execute", "--yes")
    assert code == 2, text
    assert f"pack verify-remote {MODEL_ID} --env staging --backend onnx --out {out}" in text
    # the real CLI refuses before packing (the report is not rewritten)
    before = (out / "report.json").stat().st_mtime_ns
    argv = ["minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), "--quiet"]
    flags = ["--register", "--env", "production", "--registry-url", production_server.url]
    assert cli.main([*argv, *flags, "--execute", "--yes"]) == 2
    assert (out / "report.json").stat().st_mtime_ns == before
    # registered in staging but never verified there: still refused, after the pack, before any upload
    assert publish(out, "--register", "--execute")[0] == 0
    staging_requests = len(registry_server.requests)
    code, text = production(out, production_server, "--upload", GS, "--execute", "--yes")
    assert code == 2 and "not verified in staging" in text
    assert not [n for n in gcs_emulator.names() if n.startswith("rf-platform-models/")]  # no zip uploaded
    assert production_server.requests == []
    assert len(registry_server.requests) == staging_requests
    assert not (out / "publish-state.production.json").exists()


def test_production_after_staging_verification(out, registry_server, production_server):
    assert publish(out, "--register", "--execute")[0] == 0
    code, text = verify_remote(out)
    assert code == 0 and "recorded 1/1 verified packages for staging" in text, text
    raw = (out / "remote-verified.staging.json").read_text()
    assert registry_server.secret not in raw
    record = json.loads(raw)
    [package] = sealed(registry_server)
    entry = record["models"][MODEL_ID]["onnx"]
    assert entry["package_id"] == package.id
    assert entry["files"] == {f["path"]: f["md5"] for f in manifest(out)["files"]}
    assert entry["zip_sha256"] == manifest(out)["zip"]["sha256"]
    assert entry["registry_host"] == registry_server.url.split("//")[1] and entry["verified_at"]
    code, text = production(out, production_server)  # the dry-run plan says so
    assert code == 0 and f"staging: verified in staging ({entry['registry_host']}" in text
    code, text = production(out, production_server, "--execute", "--yes")
    assert code == 0, text
    assert len(production_server.sealed(MODEL_ID)) == 1
    state = json.loads((out / "publish-state.production.json").read_text())
    [prod_entry] = state["packages"].values()
    assert prod_entry["sealed"] and prod_entry["staging_check"]["result"].startswith("verified in staging")


def test_package_changed_after_staging_verification_is_refused(out, registry_server, production_server):
    assert publish(out, "--register", "--execute")[0] == 0
    assert verify_remote(out)[0] == 0
    path = out / "remote-verified.staging.json"
    record = json.loads(path.read_text())
    files = record["models"][MODEL_ID]["onnx"]["files"]
    files["weights.onnx"] = "0" * 32  # staging verified other bytes than the zip we hold now
    path.write_text(json.dumps(record))
    code, text = production(out, production_server, "--execute", "--yes")
    assert code == 1 and "not recorded as verified in staging" in text
    assert f"pack verify-remote {MODEL_ID} --env staging --backend onnx --out {out}" in text
    assert production_server.requests == []


def test_skip_staging_check_warns_and_is_recorded(out, production_server):
    code, text = production(out, production_server, "--execute", "--yes", "--skip-staging-check")
    assert code == 0, text
    assert "WARNING: --skip-staging-check" in text
    assert len(production_server.sealed(MODEL_ID)) == 1
    state = json.loads((out / "publish-state.production.json").read_text())
    [entry] = state["packages"].values()
    assert entry["staging_check"]["result"] == "skipped (--skip-staging-check)"
    assert publish(out, "--register", "--execute", "--skip-staging-check")[0] == 2  # staging: meaningless
