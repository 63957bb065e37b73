"""pack --fixtures: deterministic files, conftest merging, and the generated tests passing in a clean venv."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager.archive import Limits
from packager.errors import UsageError
from packager.fixtures import after_pack, conftest_block, generate, merge_blocks, package_fixtures
from packager.fixtures.npz import npz_bytes, write_npz

CLEAN_VENV_PACKAGES = ["numpy", "onnxruntime", "pytest", "filelock"]


def test_npz_bytes_are_deterministic_and_loadable(tmp_path: Path) -> None:
    arrays = {"output/b": np.arange(6, dtype=np.float32).reshape(2, 3), "input/a": np.array([1, 2])}
    first = npz_bytes(arrays)
    assert first == npz_bytes(dict(reversed(list(arrays.items()))))
    (tmp_path / "x.npz").write_bytes(first)
    with np.load(tmp_path / "x.npz") as data:
        assert sorted(data.files) == ["input/a", "output/b"]
        np.testing.assert_array_equal(data["output/b"], arrays["output/b"])


def test_merge_keeps_other_fixtures_and_is_idempotent() -> None:
    existing = '"""Consumer conftest."""\nimport pytest\n\n\n@pytest.fixture\ndef mine():\n    return 1\n'
    once = merge_blocks(existing, {"common": "X = 1", "fam": "Y = 2"})
    assert once.startswith(existing) and "def mine()" in once
    assert merge_blocks(once, {"common": "X = 1", "fam": "Y = 2"}) == once
    updated = merge_blocks(once + "\nTAIL = 3\n", {"fam": "Y = 3"})
    assert "Y = 3" in updated and "Y = 2" not in updated and "TAIL = 3" in updated and "def mine()" in updated


FAMILY_REPORT = {
    "passed": True,
    "architecture": "tiny",
    "task": "embedding",
    "references": {"l1": {"golden": "goldens/tiny-l1-reference.npz"}},
    "goldens": [],
    "parity": [],
}
PACKAGE = {
    "variant": "l1",
    "backend": "onnx",
    "zip": "tiny-l1-onnx.zip",
    "md5": "0" * 32,
    "model_class": "x:Y",
}
LIMITS_TEST = """
import os

import pytest


def test_raised_limits_accept_the_package(raised_l1_onnx_package):
    assert len(os.listdir(raised_l1_onnx_package)) == 10_001


def test_default_limits_refuse_it(request):
    with pytest.raises(ValueError, match=r"holds 10001 files \\(accepted: at most 10000 \\(--max-members"):
        request.getfixturevalue("default_l1_onnx_package")
"""


def test_generated_fixtures_hold_packages_to_the_runs_limits(tmp_path: Path) -> None:
    """A package of 10001 files, verified by a run with --max-members 20000: the fixture generated from
    that run accepts it, one generated with the default limits refuses it (each family's block carries
    the limits of the run it came from)."""
    out = tmp_path / "out"
    write_npz(out / "goldens" / "tiny-l1-reference.npz", {"input/x": np.zeros(2), "output/y": np.zeros(2)})
    zip_path = out / "tiny-l1-onnx.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("config.json", b"{}")
        for i in range(10_000):
            zf.writestr(f"f{i}.txt", b"")
    package = {**PACKAGE, "md5": hashlib.md5(zip_path.read_bytes()).hexdigest()}
    dest = tmp_path / "consumer"
    raised = {**FAMILY_REPORT, "family": "raised", "packages": [package]}
    args = argparse.Namespace(
        fixtures=dest, package_url_base=None, max_extract_bytes=3 * 2**40, max_members=20_000
    )
    after_pack(args, raised, out, None)  # as `pack --max-members 20000 --fixtures DEST` does
    generate({**raised, "family": "default"}, out, dest, out.as_uri())
    assert "max_total_bytes=3298534883328,\n        max_members=20000," in (dest / "conftest.py").read_text()
    (dest / "test_limits.py").write_text(LIMITS_TEST)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(dest / "test_limits.py")],
        cwd=dest,
        env={**os.environ, "WEIGHTPACK_ASSETS_DIR": str(tmp_path / "assets")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_a_limit_that_is_no_finite_number_is_not_embedded() -> None:
    (package,) = package_fixtures({"family": "tiny", "packages": [PACKAGE]}, "https://example.test/p")
    with pytest.raises(UsageError, match=r"limit max_member_ratio=inf in generated code \(accepted: a fin"):
        conftest_block("tiny", [package], Limits(max_member_ratio=float("inf")))


@pytest.mark.slow
def test_generated_files_are_byte_identical(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    report = json.loads((minilm_pack_onnx / "report.json").read_text())
    a = generate(report, minilm_pack_onnx, tmp_path / "a", "https://example.test/pkgs")
    b = generate(report, minilm_pack_onnx, tmp_path / "b", "https://example.test/pkgs")
    rel = sorted(p.relative_to(tmp_path / "a") for p in a)
    assert rel == sorted(p.relative_to(tmp_path / "b") for p in b)
    for r in rel:
        assert (tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes(), r
    again = generate(report, minilm_pack_onnx, tmp_path / "a", "https://example.test/pkgs")  # re-merge
    assert [p.read_bytes() for p in again] == [
        (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes() for p in again
    ]
    conftest = (tmp_path / "a" / "conftest.py").read_text()
    assert 'MINILM_L6_ONNX_PACKAGE_URL = "https://example.test/pkgs/all-minilm-l6-onnx.zip"' in conftest
    assert "def minilm_l6_onnx_package()" in conftest


@pytest.fixture(scope="session")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only what the generated tests need (``$WEIGHTPACK_CLEAN_VENV`` reuses one)."""
    if os.environ.get("WEIGHTPACK_CLEAN_VENV"):
        return Path(os.environ["WEIGHTPACK_CLEAN_VENV"])
    path = tmp_path_factory.mktemp("clean-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *CLEAN_VENV_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot pip install {CLEAN_VENV_PACKAGES} into a fresh venv: {proc.stderr[-500:]}")
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    return {**keep, **extra}


@pytest.mark.slow
def test_generated_tests_pass_in_clean_venv(
    minilm_pack_onnx: Path, clean_venv: Path, file_server, tmp_path: Path
) -> None:
    python = str(clean_venv / "bin" / "python")
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('packager', 'backends', 'bench', 'weightpack') if u.find_spec(m)])"
    )
    absent = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr  # nothing from weightpack importable

    report = json.loads((minilm_pack_onnx / "report.json").read_text())
    for pkg in report["packages"]:
        file_server.add(f"pkgs/{pkg['zip']}", (minilm_pack_onnx / pkg["zip"]).read_bytes())
    dest = tmp_path / "consumer" / "tests"
    dest.mkdir(parents=True)
    (dest / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef existing_fixture():\n    return 42\n"
    )
    (dest / "test_existing.py").write_text(
        "def test_existing(existing_fixture):\n    assert existing_fixture == 42\n"
    )
    generate(report, minilm_pack_onnx, dest, file_server.url_for("pkgs"))

    assets = tmp_path / "assets"
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "markers=slow: slow", str(dest)]

    def run(junit: str, **env: str) -> ET.Element:
        proc = subprocess.run(
            [*cmd, f"--junitxml={tmp_path / junit}"],
            cwd=dest,
            env=_clean_env(WEIGHTPACK_ASSETS_DIR=str(assets), **env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "2 passed" in proc.stdout, proc.stdout[-2000:]
        return ET.parse(tmp_path / junit).getroot()

    # 1) the manifest's class (weightpack's OnnxModel) is not importable here: the vendored loader stands in
    root = run("vendored.xml")
    loaders = [p.get("value") for p in root.iter("property") if p.get("name") == "loader"]
    assert loaders and loaders[0].startswith("vendored loader")
    zip_gets = [r for r in file_server.requests if r.method == "GET" and r.path.endswith(".zip")]
    assert len(zip_gets) == 1

    # 2) a consumer's own model class, named by the env var, is used; the download is reused (no new GET)
    lib = tmp_path / "consumer_lib"
    lib.mkdir()
    (lib / "consumer_models.py").write_text(
        "import numpy as np, onnxruntime as ort\n\n\nclass Embedder:\n"
        "    @classmethod\n    def from_pretrained(cls, path, device='cpu', **kw):\n"
        "        self = cls()\n        self.s = ort.InferenceSession(path + '/weights.onnx')\n"
        "        return self\n\n"
        "    def infer(self, x):\n        names = [o.name for o in self.s.get_outputs()]\n"
        "        feed = {i.name: np.asarray(x[i.name], dtype=np.int64) for i in self.s.get_inputs()}\n"
        "        return dict(zip(names, self.s.run(names, feed)))\n"
    )
    root = run("consumer.xml", PYTHONPATH=str(lib), MINILM_L6_ONNX_MODEL_CLASS="consumer_models:Embedder")
    loaders = [p.get("value") for p in root.iter("property") if p.get("name") == "loader"]
    assert loaders == ["consumer_models:Embedder"]
    assert len([r for r in file_server.requests if r.method == "GET" and r.path.endswith(".zip")]) == 1
    assert not list(assets.glob("*.part")) and not list(assets.glob(".*"))
    assert sys.executable not in python
