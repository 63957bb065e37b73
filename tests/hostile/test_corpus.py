"""Every hostile case through every entry that reads a package: one test per (case, entry) pair.

Entries: ``safe_extract`` (pack's verification, the nightly suite), pack's reuse of a previous build (a
hostile zip with a manifest patched to match), ``pack verify-remote`` against the loopback registry (zips
and packages registered file by file), and the integration-fixture code that ``pack --fixtures`` generates
(which embeds the validator). Each must refuse with exit code 2 (or, for the fixture, its error naming the
rule) and write nothing outside its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from packager import cli
from packager.archive import DEFAULT_LIMITS, build_zip, safe_extract
from packager.build import build_package, input_key
from packager.errors import ArchiveError
from packager.fixtures.templates import common_block
from packager.manifest import write_manifest
from packager.outdir import OutputFolderError
from packager.recipes import load_recipe
from packager.sources import FetchedSource
from packager.ui import UI
from tests.hostile.corpus import GOOD, LIST_CASES, ZIP_CASES, Case, no_evil_anywhere, snapshot

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "all-minilm/l6"


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A folder whose whole content each test accounts for; the hostile zip lies beside the target."""
    box = tmp_path / "box"
    box.mkdir()
    return box


@pytest.mark.parametrize("case", list(ZIP_CASES.values()), ids=list(ZIP_CASES))
def test_safe_extract_refuses(case: Case, sandbox: Path) -> None:
    zip_path = case.write(sandbox / "hostile.zip")
    before = snapshot(sandbox)
    with pytest.raises(ArchiveError, match=re.escape(case.rule)) as caught:
        safe_extract(zip_path, sandbox / "target" / "package")
    assert caught.value.exit_code == 2
    assert snapshot(sandbox) - before <= {"target"}  # only the (empty) parent of the target
    assert not (sandbox / "target" / "package").exists()
    no_evil_anywhere(sandbox)


# ---------------------------------------------------------------- pack's reuse path


def real_files(zip_path: Path) -> list[dict]:
    """The file list a build would have written for ``zip_path``: every member its central directory holds
    (duplicates, links and folders included), its declared size and the hashes of its data as ``zipfile``
    reads it (nothing where ``zipfile`` cannot read it: the listing, not the data, is what is compared)."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return []
    files = []
    with zf:
        for member in zf.infolist():
            try:
                data = zf.read(member)
            except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError, zlib.error):
                data = b""
            files.append(
                {
                    "path": member.filename,
                    "size": member.file_size,
                    "md5": hashlib.md5(data).hexdigest(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return files


def patched_manifest(zip_path: Path, key: str) -> Path:
    """The manifest a build would have written, patched to match the hostile zip exactly: its bytes (size,
    md5, sha256) and its member list, so that only the archive validator is left to refuse it."""
    data = zip_path.read_bytes()
    manifest = {
        "schema": "weightpack.package-manifest/v1",
        "zip": {
            "name": zip_path.name,
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "files": real_files(zip_path),
        "packageManifest": {"backendType": "onnx"},
        "provenance": {},
        "input_key": key,
        "model_class": "x:Y",
    }
    path = zip_path.with_name(zip_path.name[: -len(".zip")] + ".manifest.json")
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("case", list(ZIP_CASES.values()), ids=list(ZIP_CASES))
def test_reuse_path_refuses(case: Case, sandbox: Path) -> None:
    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    fetched = FetchedSource(path=sandbox / "upstream", provenance={"files": {"config.json": "x"}})
    key = input_key(fetched, recipe, "onnx", "l6")
    zip_path = case.write(sandbox / recipe.zip_name("l6", "onnx"))
    patched_manifest(zip_path, key)
    before = snapshot(sandbox)
    with pytest.raises(OutputFolderError, match="was not reused") as caught:
        build_package(recipe, "l6", "onnx", fetched, {}, "x:Y", sandbox, UI(), limits=DEFAULT_LIMITS)
    assert caught.value.exit_code == 2
    assert case.rule in str(caught.value), str(caught.value)
    assert f"Delete {zip_path} and {zip_path.with_suffix('')}.manifest.json" in str(caught.value)
    assert snapshot(sandbox) == before  # refused before any export, nothing rebuilt over it
    no_evil_anywhere(sandbox)


def test_reuse_path_reuses_a_build_that_follows_the_rules(sandbox: Path) -> None:
    """The other side of the refusals above: a genuine build, its real manifest, is reused as is."""
    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    fetched = FetchedSource(path=sandbox / "upstream", provenance={"files": {"config.json": "x"}})
    key = input_key(fetched, recipe, "onnx", "l6")
    tree = sandbox / "tree"
    for name, data in GOOD:
        tree.mkdir(exist_ok=True)
        (tree / name).write_bytes(data)
    built = build_zip(tree, sandbox / recipe.zip_name("l6", "onnx"))
    extra = {"input_key": key, "model_class": "x:Y"}
    write_manifest(built, package_manifest={"backendType": "onnx"}, provenance={}, extra=extra)
    found = build_package(recipe, "l6", "onnx", fetched, {}, "x:Y", sandbox, UI(), limits=DEFAULT_LIMITS)
    assert found.reused and found.zip_result.sha256 == built.sha256


# ---------------------------------------------------------------- pack verify-remote


def pack_out(sandbox: Path) -> Path:
    """A pack output folder with the recorded goldens verify-remote needs (never reached here)."""
    out = sandbox / "out"
    (out / "goldens").mkdir(parents=True)
    np.savez(
        out / "goldens" / "all-minilm-l6-reference.npz", **{"input/x": np.zeros(2), "output/y": np.zeros(2)}
    )
    return out


def register(registry, emulator, handles: list[str], blobs: dict[str, bytes]) -> None:
    from tests.servers.registry import Package

    registry.models[MODEL_ID] = {
        "modelId": MODEL_ID,
        "modelArchitecture": "all-minilm",
        "modelVariant": "l6",
        "taskType": "embedding",
    }
    package = Package("pkg-hostile", MODEL_ID, {"backendType": "onnx"}, handles, {}, sealed=True)
    package.md5 = {h: hashlib.md5(blobs.get(h, b"x")).hexdigest() for h in handles}
    registry.packages[package.id] = package
    for handle, data in blobs.items():
        emulator.put(registry.object_name(package.id, handle), data)


def verify_remote(out: Path) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli.main(["verify-remote", MODEL_ID, "--env", "staging", "--out", str(out)])
    return code, buffer.getvalue()


def check_refused(code: int, text: str, rule: str, out: Path, sandbox: Path, before: set[str]) -> None:
    assert code == 2, text
    assert rule in text and "PASSED" not in text, text
    record = json.loads((out / "remote-verified.staging.json").read_text())
    assert MODEL_ID not in record.get("models", {})  # never recorded as verified
    added = {p for p in snapshot(sandbox) - before if not p.startswith("out/remote-verified")}
    assert added <= {"out/.tmp"}, added  # the scratch folder, empty again
    assert not (out / ".tmp").exists() or not any((out / ".tmp").iterdir())
    no_evil_anywhere(sandbox)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ZIP_CASES.values()), ids=list(ZIP_CASES))
def test_verify_remote_refuses_zip(case: Case, sandbox: Path, registry_server, gcs_emulator) -> None:
    out = pack_out(sandbox)
    data = case.write(sandbox / "hostile.zip").read_bytes()
    (sandbox / "hostile.zip").unlink()
    register(registry_server, gcs_emulator, ["all-minilm-l6-onnx.zip"], {"all-minilm-l6-onnx.zip": data})
    before = snapshot(sandbox)
    code, text = verify_remote(out)
    check_refused(code, text, case.rule, out, sandbox, before)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(LIST_CASES.values()), ids=list(LIST_CASES))
def test_verify_remote_refuses_file_list(case: Case, sandbox: Path, registry_server, gcs_emulator) -> None:
    out = pack_out(sandbox)
    handles = list(case.handles or ())
    safe = {h: b"{}" for h in handles if h in ("config.json",)}
    register(registry_server, gcs_emulator, handles, safe)
    before = snapshot(sandbox)
    code, text = verify_remote(out)
    check_refused(code, text, case.handles_rule, out, sandbox, before)


# ---------------------------------------------------------------- the generated fixture code


@pytest.fixture(scope="module")
def fixture_namespace() -> dict:
    """The conftest helper block ``pack --fixtures`` writes, executed as its own module."""
    namespace: dict = {"__name__": "generated_conftest", "__file__": "/nonexistent/conftest.py"}
    exec(compile(common_block(), "generated_conftest.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("case", list(ZIP_CASES.values()), ids=list(ZIP_CASES))
def test_generated_fixture_refuses(case: Case, sandbox: Path, fixture_namespace: dict, monkeypatch) -> None:
    zip_path = case.write(sandbox / "hostile.zip")
    assets = sandbox / "assets"
    monkeypatch.setenv("WEIGHTPACK_ASSETS_DIR", str(assets))
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()  # the md5 matches: only the rules can refuse
    before = snapshot(sandbox)
    with pytest.raises(ValueError, match=re.escape(case.rule)):
        fixture_namespace["weightpack_download_package"]("HOSTILE", zip_path.as_uri(), md5)
    added = snapshot(sandbox) - before
    assert added <= {"assets", "assets/hostile.lock"}, added  # no folder, no stamp, no temporaries
    no_evil_anywhere(sandbox)


def test_generated_fixture_embeds_the_validator_verbatim() -> None:
    """Both files of the validator, word for word, each standard library only (and one relative import)."""
    import ast
    import sys

    from packager.archive import names, validator

    for module in (names, validator):
        text = Path(module.__file__).read_text(encoding="utf-8")
        assert text in common_block(), module.__name__
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or "").split(".")[0])
        assert imported - set(sys.stdlib_module_names) <= {".names"}, (module.__name__, imported)
        assert "__future__" not in imported


@pytest.mark.slow
def test_a_reused_zip_with_corrupt_deflate_data_stops_pack_with_exit_2_and_a_report(
    minilm_pack_onnx: Path, tmp_path: Path
) -> None:
    """A built zip whose deflated member was garbled afterwards (headers, CRC and manifest all matching):
    a raw ``zlib.error`` made it exit 1 with no report."""
    import shutil

    from tests.hostile.helpers import pack

    out = Path(shutil.copytree(minilm_pack_onnx, tmp_path / "out"))
    [zip_path] = out.glob("*.zip")
    blob = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        member = next(i for i in zf.infolist() if i.compress_type == zipfile.ZIP_DEFLATED)
        start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    blob[start : start + member.compress_size] = b"\xff" * member.compress_size
    zip_path.write_bytes(bytes(blob))
    manifest_path = zip_path.with_name(zip_path.name[: -len(".zip")] + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["zip"].update(
        size=len(blob), md5=hashlib.md5(blob).hexdigest(), sha256=hashlib.sha256(blob).hexdigest()
    )
    manifest_path.write_text(json.dumps(manifest))
    (out / "report.json").unlink()
    proc = pack("minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), "--no-latency")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "has corrupt deflate data" in proc.stderr and "was not reused" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert not report["passed"] and report["failures"][-1]["exit_code"] == 2


def mutants(seed: int, count: int) -> list[bytes]:
    """``count`` seeded mutations (bytes set, cut or inserted) of a stored and a deflated good zip."""
    import os
    import random

    rng = random.Random(seed)
    sources = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=method) as zf:
            zf.writestr("config.json", '{"a": 1}' * 50)
            zf.writestr("vocab.txt", "hello\n" * 300)
            zf.writestr("weights.onnx", rng.randbytes(2000))
        sources.append(buffer.getvalue())
    found = []
    for _ in range(count):
        blob = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            at, kind = rng.randrange(len(blob)), rng.random()
            if kind < 0.6:
                blob[at] = rng.randrange(256)
            elif kind < 0.8:
                del blob[at : at + rng.randint(1, 8)]
            else:
                blob[at:at] = os.urandom(rng.randint(1, 8))
        found.append(bytes(blob))
    return found


def test_mutated_zips_are_refused_or_extracted_never_a_crash(sandbox: Path) -> None:
    """600 seeded mutations of two good zips through ``check_zip`` and ``safe_extract``: each is refused
    with ArchiveError or passes both, never another exception (main raised a raw zlib.error for some)."""
    from packager.archive import check_zip

    outcomes = {"refused": 0, "accepted": 0}
    for i, blob in enumerate(mutants(seed=25, count=600)):
        path = sandbox / f"m{i}.zip"
        path.write_bytes(blob)
        try:
            check_zip(path)
            safe_extract(path, sandbox / "x" / str(i))
            outcomes["accepted"] += 1
        except ArchiveError:
            outcomes["refused"] += 1
        path.unlink()
    assert outcomes["refused"] > 500, outcomes
