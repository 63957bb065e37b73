"""A backend from another distribution: registered only by its entry point, it packs end to end.

``tests/plugins/npzbackend`` is a whole backend outside ``backends/`` (spec, options, exporter, model
class). The test installs it the way pip would leave it, a ``.dist-info`` with an ``entry_points.txt``
in the ``weightpack.backends`` group, and runs the real ``pack`` CLI on a recipe that uses it; no file of
weightpack knows its name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.packs import pack_process

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"

RECIPE = """
[family]
architecture = "tiny-linear"
task = "world-model"

[variants.base]
source = "{upstream}"

[backends.npz]
{options}

[inputs]
kind = "tensor"
tensors = [{{ name = "x", shape = [3, 4], dtype = "float32", low = -1.0, high = 1.0 }}]

[parity]
reference_class = "npzbackend.model:LinearReference"
"""


@pytest.fixture
def installed(tmp_path: Path) -> tuple[Path, ...]:
    """A site folder holding the plugin's distribution metadata; the import path that holds it."""
    site = tmp_path / "site"
    info = site / "npzbackend-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npzbackend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[weightpack.backends]\nnpz = npzbackend.spec:SPEC\n")
    return (site, PLUGINS)


def pack(tmp_path: Path, paths: tuple[Path, ...], options: str) -> subprocess.CompletedProcess[str]:
    """``pack tiny`` in a child process whose PYTHONPATH holds ``paths`` (where entry points are found)."""
    upstream = tmp_path / "upstream"
    upstream.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(upstream / "linear.npz", w=rng.standard_normal((4, 2)), b=rng.standard_normal(2))
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "tiny.toml").write_text(RECIPE.format(upstream=upstream.as_posix(), options=options))
    argv = [
        "tiny",
        "--recipes",
        str(recipes),
        "--out",
        str(tmp_path / "out"),
        "--devices",
        "cpu",
        "--no-latency",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    return pack_process(*argv, cwd=tmp_path, paths=paths)


@pytest.mark.slow
def test_entry_point_backend_packs_end_to_end(tmp_path: Path, installed: tuple[Path, ...]) -> None:
    proc = pack(tmp_path, installed, "compressed = true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["passed"]
    manifest = json.loads((tmp_path / "out" / "tiny-linear-base-npz.manifest.json").read_text())
    assert manifest["packageManifest"] == {
        "type": "npz-model-package-v1",
        "backendType": "npz",
        "quantization": "fp32",
    }
    assert manifest["wire_backend"] == "numpy-npz"
    rows = [p for p in report["parity"] if p["backend"] == "npz"]
    assert rows and all(r["passed"] for r in rows)
    assert {(r["atol"], r["rtol"]) for r in rows} == {(2e-4, 3e-4)}  # the plugin's own tolerance floor


@pytest.mark.slow
def test_entry_point_backend_options_are_checked(tmp_path: Path, installed: tuple[Path, ...]) -> None:
    proc = pack(tmp_path, installed, "compresed = true")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "tiny.toml: field 'backends.npz.compresed': is not a known option" in proc.stderr
    assert "compressed" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_unknown_backend_without_its_entry_point(tmp_path: Path) -> None:
    proc = pack(tmp_path, (PLUGINS,), "")
    assert proc.returncode == 2
    assert "field 'backends.npz': 'npz' is not accepted" in proc.stderr
