"""Caches are evidence, not truth (issue 25): a remembered hash is believed only while it is about the same
bytes and was written by weightpack; the generated fixture re-checks a folder it unzipped before."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from packager.fixtures.templates import common_block
from packager.sources import fetch

ZEROS = "0" * 64


def source(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 4}')
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    return folder


def real_sha256s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def provenance_sha256s(folder: Path, cache: Path) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in fetch(str(folder), cache_dir=cache).provenance["files"]}


def poison(cache: Path, edit) -> None:
    path = cache / "hashes.json"
    entries = json.loads(path.read_text())
    for entry in entries.values():
        edit(entry)
    path.write_text(json.dumps(entries))


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.update(sha256=ZEROS),  # every hash set to zeros, the rest left as it was
        lambda e: (e.update(sha256=ZEROS), e.pop("mac", None)),  # ... and written as an old-style entry
        lambda e: e.update(sha256=ZEROS, mac="f" * 64),
    ],
    ids=["zeros", "zeros-without-mac", "zeros-with-a-forged-mac"],
)
def test_a_poisoned_hash_cache_does_not_become_provenance(tmp_path: Path, edit) -> None:
    folder, cache = source(tmp_path), tmp_path / "cache"
    assert provenance_sha256s(folder, cache) == real_sha256s(folder)
    poison(cache, edit)
    assert provenance_sha256s(folder, cache) == real_sha256s(folder)


def test_a_file_rewritten_with_its_size_and_mtime_put_back_is_hashed_again(tmp_path: Path) -> None:
    folder, cache = source(tmp_path), tmp_path / "cache"
    provenance_sha256s(folder, cache)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(os.urandom(stat.st_size))  # same size ...
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the old mtime
    assert provenance_sha256s(folder, cache) == real_sha256s(folder)


def test_the_cache_still_saves_the_hashing_of_unchanged_files(tmp_path: Path, monkeypatch) -> None:
    from packager.sources import hash_cache

    folder, cache = source(tmp_path), tmp_path / "cache"
    provenance_sha256s(folder, cache)
    assert oct((cache / "hashes.key").stat().st_mode & 0o777) == "0o600"

    def never(path):
        raise AssertionError(f"re-hashed {path}")

    monkeypatch.setattr(hash_cache, "sha256_file", never)
    assert provenance_sha256s(folder, cache) == real_sha256s(folder)


# ---------------------------------------------------------------- the generated fixture


@pytest.fixture
def download(tmp_path: Path, monkeypatch):
    namespace: dict = {"__name__": "generated_conftest", "__file__": str(tmp_path / "conftest.py")}
    exec(compile(common_block(), "generated_conftest.py", "exec"), namespace)
    monkeypatch.setenv("WEIGHTPACK_ASSETS_DIR", str(tmp_path / "assets"))
    zip_path = tmp_path / "pkg.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("weights.onnx", b"\x08\x07" * 500)
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
    return lambda: Path(namespace["weightpack_download_package"]("PKG", zip_path.as_uri(), md5))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda f: (f / "weights.onnx").open("ab").write(b"appended after extraction"),
        lambda f: (f / "extra.py").write_text("import os"),
        lambda f: (f / "config.json").unlink(),
        lambda f: ((f / "weights.onnx").unlink(), (f / "weights.onnx").symlink_to("/etc/hostname")),
    ],
    ids=["appended", "added", "removed", "replaced-by-a-link"],
)
def test_the_fixture_re_checks_a_folder_it_unzipped_before(download, tamper) -> None:
    folder = download()
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    tamper(folder)
    again = download()
    assert again == folder
    assert {p.name: p.read_bytes() for p in again.iterdir() if not p.is_symlink()} == original
    assert not any(p.is_symlink() for p in again.iterdir())


def test_the_fixture_reuses_an_untouched_folder(download) -> None:
    folder = download()
    inode = (folder / "weights.onnx").stat().st_ino
    assert download() == folder and (folder / "weights.onnx").stat().st_ino == inode  # not unzipped again


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: (c / "hashes.json").write_text("[" * 5000 + "]" * 5000),
        lambda c: (c / "hashes.json").write_text('{"a":' * 5000 + "1" + "}" * 5000),
        lambda c: (c / "hashes.json").write_bytes(os.urandom(64)),
        lambda c: (c / "hashes.json").mkdir(),
        lambda c: (c / "hashes.json.lock").mkdir(),
        lambda c: (c / "hashes.key").write_text("not hex"),
        lambda c: (c / "hashes.key").mkdir(),
    ],
    ids=["deep-list", "deep-object", "garbage", "a-folder", "lock-a-folder", "bad-key", "key-a-folder"],
)
def test_a_spoilt_hash_cache_is_only_a_hint(tmp_path: Path, spoil) -> None:
    """A RecursionError or IsADirectoryError from the sidecar used to stop the run ('unexpected', or exit 3
    with advice to free space); the files are hashed again instead."""
    folder, cache = source(tmp_path), tmp_path / "cache"
    cache.mkdir()
    spoil(cache)
    assert provenance_sha256s(folder, cache) == real_sha256s(folder)
