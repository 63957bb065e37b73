"""Tests for packager.archive and packager.manifest; each layout/format/safety rule has a test that fails if
the rule breaks."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from packager.archive import (
    FIXED_DATE_TIME,
    FileEntry,
    _build,
    build_zip,
    check_zip,
    hash_file,
    safe_extract,
    validate_tree,
    validate_zip,
)
from packager.errors import ArchiveError, UnsafeArchiveError
from packager.manifest import (
    MANIFEST_SCHEMA,
    manifest_path_for,
    read_manifest,
    verify_zip_against_manifest,
    write_manifest,
)

MIB = 1 << 20

TREE = {
    "config.json": b'{"hidden_size": 384, "model_type": "bert"}\n' * 20,
    "model.safetensors": os.urandom(3 * MIB + 123),
    "weights.onnx": os.urandom(4096),
    "tokenizer.json": b'{"vocab": {"a": 1, "b": 2}}' * 200,
    "README.md": b"# model card\n" * 50,
    ".gitattributes": b"*.safetensors filter=lfs\n",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}\n',
    "empty.txt": b"",
}


def make_tree(root: Path, files: dict[str, bytes] = TREE, order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "pkg")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def craft_zip(
    path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_STORED
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def problems_for(root: Path, path: str) -> list[str]:
    return [p for p in validate_tree(root) if p.startswith(repr(path))]


# ---------------------------------------------------------------- layout rules on a tree


def test_flat_tree_with_sub_folder_is_packaged(tree: Path, tmp_path: Path) -> None:
    assert validate_tree(tree) == []
    result = build_zip(tree, tmp_path / "out" / "pkg.zip")
    with zipfile.ZipFile(result.zip_path) as zf:
        names = zf.namelist()
    assert names == sorted(TREE)  # sorted, sub-folder kept, dotfile kept, no directory entries
    assert [e.path for e in result.files] == sorted(TREE)


def test_single_wrapping_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    make_tree(root / "mymodel", {"config.json": b"{}", "model.onnx": b"x"})
    problems = validate_tree(root)
    assert len(problems) == 1
    assert "'mymodel/'" in problems[0] and "single folder" in problems[0] and "accepted" in problems[0]
    with pytest.raises(ArchiveError, match="single folder"):
        build_zip(root, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


@pytest.mark.parametrize(
    "name", ["bad name.json", "ünï.json", "a:b.json", "back\\slash.json", "semi;colon.bin"]
)
def test_bad_segment_names_are_refused(tmp_path: Path, name: str) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", f"sub/{name}": b"x"})
    problems = problems_for(root, f"sub/{name}")
    assert problems, validate_tree(root)
    assert "A-Za-z0-9._-" in problems[0]
    with pytest.raises(ArchiveError, match=r"A-Za-z0-9\._-"):
        build_zip(root, tmp_path / "out.zip")


def test_bad_directory_name_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "my dir/x.json": b"x"})
    assert problems_for(root, "my dir")


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_symlinks_are_refused(tmp_path: Path, kind: str) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "real/x.bin": b"x"})
    if kind == "file":
        (root / "link.bin").symlink_to(root / "real" / "x.bin")
        bad = "link.bin"
    else:
        (root / "linkdir").symlink_to(root / "real", target_is_directory=True)
        bad = "linkdir"
    problems = problems_for(root, bad)
    assert problems and "symbolic link" in problems[0]
    with pytest.raises(ArchiveError, match="symbolic link"):
        build_zip(root, tmp_path / "out.zip")


def test_root_model_config_is_refused_but_nested_is_fine(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "model_config.json": b"{}"})
    assert problems_for(root, "model_config.json")
    ok = make_tree(tmp_path / "ok", {"config.json": b"{}", "sub/model_config.json": b"{}"})
    assert validate_tree(ok) == []


def test_top_level_model_dependencies_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "model_dependencies/dep.json": b"{}"})
    problems = problems_for(root, "model_dependencies/")
    assert problems and "reserved" in problems[0]


def test_empty_tree_and_empty_directory_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert any("no files" in p for p in validate_tree(empty))
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}"})
    (root / "hollow").mkdir()
    assert problems_for(root, "hollow/")


def test_case_collisions_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "Config.json": b"{}"})
    assert any("letter case" in p for p in validate_tree(root))


def test_reserved_names_and_collisions_are_refused_in_any_letter_case(tmp_path: Path) -> None:
    """A staging tree is held to the same case-insensitive rules as a zip: on a case-insensitive file
    system these are the consumer's model_config.json and model_dependencies/, and 'A' lands on 'a/'."""
    files = {"config.json": b"{}", "Model_Config.JSON": b"{}", "MODEL_DEPENDENCIES/x.py": b"", "A": b"x"}
    root = make_tree(tmp_path / "pkg", {**files, "a/b.json": b"{}"})
    assert problems_for(root, "Model_Config.JSON") == [
        "'Model_Config.JSON': is reserved at the root, in any letter case (the consumer writes "
        "model_config.json) (accepted: any other file name)"
    ]
    assert problems_for(root, "MODEL_DEPENDENCIES/") == [
        "'MODEL_DEPENDENCIES/': is reserved at the top level by the consumer, in any letter case "
        "(accepted: any other name)"
    ]
    assert problems_for(root, "A") == [
        "'A': differs only in letter case from ['a/']: a file and a directory on one path on "
        "case-insensitive file systems (accepted: names that differ by more than letter case)"
    ]


def test_dest_inside_tree_is_refused(tree: Path) -> None:
    with pytest.raises(ArchiveError, match="inside the tree"):
        build_zip(tree, tree / "self.zip")


# ---------------------------------------------------------------- format


def test_build_is_deterministic(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a", order=list(TREE))
    old_umask = os.umask(0o077)
    try:
        b = make_tree(tmp_path / "b", order=list(reversed(TREE)))
    finally:
        os.umask(old_umask)
    for i, rel in enumerate(sorted(TREE)):
        os.utime(a / rel, (1_000_000_000 + i, 1_000_000_000 + i))
        os.utime(b / rel, (1_700_000_000 - i * 7919, 1_700_000_000 - i * 7919))
        (a / rel).chmod(0o755)
        (b / rel).chmod(0o600)
    first = build_zip(a, tmp_path / "x" / "first.zip")
    second = build_zip(b, tmp_path / "y" / "deeper" / "second-name.zip")
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    assert (first.md5, first.sha256, first.files) == (second.md5, second.sha256, second.files)
    with zipfile.ZipFile(first.zip_path) as zf:
        for info in zf.infolist():
            assert info.date_time == FIXED_DATE_TIME
            assert info.external_attr == (stat.S_IFREG | 0o644) << 16
            assert info.create_system == 3
            assert info.extra == b""
            assert not info.is_dir()


def test_weights_stored_and_text_deflated(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip")
    with zipfile.ZipFile(result.zip_path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    for name in ("model.safetensors", "weights.onnx"):
        assert kinds[name] == zipfile.ZIP_STORED, name
    for name in ("config.json", "tokenizer.json", "README.md", "1_Pooling/config.json"):
        assert kinds[name] == zipfile.ZIP_DEFLATED, name


def test_compress_patterns_never_deflate_weights(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip", compress_patterns=("*",))
    with zipfile.ZipFile(result.zip_path) as zf:
        assert zf.getinfo("model.safetensors").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo(".gitattributes").compress_type == zipfile.ZIP_DEFLATED


def test_hashes_match_hashlib(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip")
    for entry in result.files:
        data = (tree / entry.path).read_bytes()
        assert entry == FileEntry(
            entry.path, len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        )
    blob = result.zip_path.read_bytes()
    assert result.size == len(blob) == result.zip_path.stat().st_size
    assert result.md5 == hashlib.md5(blob).hexdigest()
    assert result.sha256 == hashlib.sha256(blob).hexdigest()
    assert hash_file(result.zip_path) == (result.size, result.md5, result.sha256)


def test_zip64_entries_round_trip(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real >4 GB file is too slow for a unit test; lowering the limit takes the same code path.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1 << 20)
    result = build_zip(tree, tmp_path / "pkg.zip")
    monkeypatch.undo()
    with zipfile.ZipFile(result.zip_path) as zf:
        assert zf.testzip() is None
        big = zf.getinfo("model.safetensors")
        assert struct.unpack("<H", big.extra[:2])[0] == 1  # zip64 extra field
    out = safe_extract(result.zip_path, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == TREE["model.safetensors"]
    assert len(out) == len(TREE)


# ---------------------------------------------------------------- atomicity


def test_exception_mid_write_leaves_nothing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = open

    class Exploding(io.RawIOBase):
        def __init__(self, path: object) -> None:
            self._f = real_open(path, "rb", buffering=0)
            self._reads = 0

        def fileno(self) -> int:
            return self._f.fileno()

        def readinto(self, buffer: bytearray) -> int:  # read() of RawIOBase goes through here too
            self._reads += 1
            if self._reads > 1:
                raise OSError("disk on fire")
            return self._f.readinto(buffer)

        def close(self) -> None:
            self._f.close()
            super().close()

    def fake_open(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if str(path).endswith("model.safetensors") and "r" in mode:
            return Exploding(path)
        return real_open(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(_build, "open", fake_open, raising=False)
    out_dir = tmp_path / "out"
    with pytest.raises(OSError, match="disk on fire"):
        build_zip(tree, out_dir / "pkg.zip")
    assert leftovers(out_dir) == []  # no pkg.zip, no .pkg.zip.*.partial


# ---------------------------------------------------------------- validate_zip / safe_extract


def test_validate_zip_applies_layout_rules(tmp_path: Path) -> None:
    good = craft_zip(tmp_path / "good.zip", [("config.json", b"{}"), ("1_Pooling/config.json", b"{}")])
    assert validate_zip(good) == []
    wrapped = craft_zip(tmp_path / "wrapped.zip", [("foo/config.json", b"{}"), ("foo/model.onnx", b"x")])
    assert any("single folder" in p for p in validate_zip(wrapped))
    reserved = craft_zip(tmp_path / "reserved.zip", [("config.json", b"{}"), ("model_config.json", b"{}")])
    assert any("reserved" in p for p in validate_zip(reserved))
    bad = craft_zip(tmp_path / "bad.zip", [("config.json", b"{}"), ("a//b.json", b"{}"), ("x y.bin", b"")])
    assert len(validate_zip(bad)) == 2
    with pytest.raises(ArchiveError, match="single folder"):
        safe_extract(wrapped, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("config.json", b"{}"), ("../evil.json", b"x")], "escapes"),
        ([("config.json", b"{}"), ("sub/../../evil.json", b"x")], "escapes"),
        ([("config.json", b"{}"), ("/etc/evil", b"x")], "absolute"),
        ([("config.json", b"{}"), ("C:\\evil", b"x")], "absolute"),
        ([("config.json", b"{}"), ("sub\\..\\..\\evil", b"x")], "backslash"),
        ([("config.json", b"{}"), (symlink_info("link"), b"/etc/passwd")], "symbolic link"),
        ([("config.json", b"{}"), ("config.json", b"{}")], "more than once"),
    ],
    ids=["zip-slip", "nested-slip", "absolute", "drive", "backslash", "symlink", "duplicate"],
)
def test_safe_extract_refuses_unsafe_members(tmp_path: Path, members: list, match: str) -> None:
    zip_path = craft_zip(tmp_path / "evil.zip", members)
    dest = tmp_path / "work" / "dest"
    with pytest.raises(UnsafeArchiveError, match=match):
        safe_extract(zip_path, dest)
    assert leftovers(tmp_path / "work") == []
    assert not (tmp_path / "evil.json").exists()


def test_safe_extract_refuses_zip_bomb(tmp_path: Path) -> None:
    zip_path = craft_zip(
        tmp_path / "bomb.zip",
        [("config.json", b"{}"), ("weights.bin", bytes(20 * MIB))],
        zipfile.ZIP_DEFLATED,
    )
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        safe_extract(zip_path, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    safe_extract(zip_path, tmp_path / "ok", max_ratio=10_000)  # the limits are what refused it


def test_safe_extract_refuses_total_size_and_file_count(tmp_path: Path) -> None:
    zip_path = craft_zip(tmp_path / "many.zip", [(f"f{i}.json", b"{}" * 100) for i in range(5)])
    with pytest.raises(UnsafeArchiveError, match="at most 3"):
        safe_extract(zip_path, tmp_path / "a", max_files=3)
    with pytest.raises(UnsafeArchiveError, match="expands to 1000 bytes"):
        safe_extract(zip_path, tmp_path / "b", max_total_bytes=999)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert len(safe_extract(zip_path, tmp_path / "c", max_files=5, max_total_bytes=1000)) == 5


def patch_declared_size(zip_path: Path, member: str, new_size: int) -> None:
    """Rewrite the uncompressed size of ``member`` in both its local header and the central directory."""
    blob = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<L", blob, info.header_offset + 22, new_size)
    central = blob.find(b"PK\x01\x02" + blob[info.header_offset + 4 : info.header_offset + 6])
    name = member.encode()
    while blob[central + 46 : central + 46 + len(name)] != name:
        central = blob.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<L", blob, central + 24, new_size)
    zip_path.write_bytes(bytes(blob))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_safe_extract_refuses_member_longer_than_declared(tmp_path: Path, method: int) -> None:
    data = os.urandom(2000) * 50  # 100 kB, compresses ~50:1: under the ratio floor
    zip_path = craft_zip(tmp_path / "liar.zip", [("a.json", b"{}"), ("weights.json", data)], method)
    patch_declared_size(zip_path, "weights.json", 1000)
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.getinfo("weights.json").file_size == 1000
    dest = tmp_path / "work" / "dest"
    with pytest.raises(UnsafeArchiveError, match="expands past its declared size"):
        safe_extract(zip_path, dest)
    assert leftovers(tmp_path / "work") == []  # a.json was extracted first, then rolled back


def test_check_zip_streams_every_member_and_writes_nothing(tmp_path: Path) -> None:
    """check_zip (pack's reuse) reads each member's data, a chunk at a time: a corrupt member is refused
    though every header is intact, nothing is written, and memory stays flat for a 24 MiB member."""
    import tracemalloc

    root = make_tree(tmp_path / "pkg", {"config.json": b"{}", "model.safetensors": os.urandom(24 * MIB)})
    zip_path = build_zip(root, tmp_path / "pkg.zip").zip_path
    before = leftovers(tmp_path)
    tracemalloc.start()
    try:
        check_zip(zip_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, peak
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo("model.safetensors")
    blob = bytearray(zip_path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", blob, info.header_offset + 26)
    blob[info.header_offset + 30 + name_len + extra_len + 5 * MIB] ^= 0xFF  # a byte of its data
    zip_path.write_bytes(bytes(blob))
    assert validate_zip(zip_path) == []  # the headers alone are fine
    with pytest.raises(ArchiveError, match=r"'model\.safetensors': CRC-32 mismatch, corrupt data \(accepted"):
        check_zip(zip_path)
    assert leftovers(tmp_path) == before


def test_safe_extract_needs_new_or_empty_dest(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not empty"):
        safe_extract(result.zip_path, busy)
    assert leftovers(busy) == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(safe_extract(result.zip_path, empty)) == len(TREE)


def test_round_trip_preserves_files_and_hashes(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip")
    dest = tmp_path / "unpacked"
    paths = safe_extract(result.zip_path, dest)
    assert [p.relative_to(dest).as_posix() for p in paths] == [e.path for e in result.files]
    for entry, path in zip(result.files, paths, strict=True):
        assert hash_file(path) == (entry.size, entry.md5, entry.sha256)
    assert leftovers(tmp_path) == sorted(["pkg", "pkg.zip", "unpacked"])


# ---------------------------------------------------------------- manifest


def test_manifest_written_and_verified(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "dist" / "minilm-onnx.zip")
    pm = {"type": "onnx-model-package-v1", "backendType": "onnx", "opset": 17, "dynamicBatchSize": True}
    path = write_manifest(
        result,
        package_manifest=pm,
        provenance={"repo": "x/y", "revision": "abc"},
        extra={"recipe": "minilm.toml"},
    )
    assert path == manifest_path_for(result.zip_path) == tmp_path / "dist" / "minilm-onnx.manifest.json"
    assert leftovers(path.parent) == ["minilm-onnx.manifest.json", "minilm-onnx.zip"]
    manifest = read_manifest(path)
    assert manifest["schema"] == MANIFEST_SCHEMA
    assert manifest["zip"] == {
        "name": "minilm-onnx.zip",
        "size": result.size,
        "md5": result.md5,
        "sha256": result.sha256,
    }
    assert manifest["files"] == [e.to_dict() for e in result.files]
    assert manifest["packageManifest"] == pm and manifest["recipe"] == "minilm.toml"
    text = path.read_text()
    assert text.index('"files"') < text.index('"packageManifest"') < text.index('"schema"')  # sorted keys
    verify_zip_against_manifest(result.zip_path, manifest)

    blob = bytearray(result.zip_path.read_bytes())
    blob[100] ^= 0xFF  # same size, different content
    result.zip_path.write_bytes(bytes(blob))
    with pytest.raises(ArchiveError, match="md5"):
        verify_zip_against_manifest(result.zip_path, manifest)
    result.zip_path.write_bytes(bytes(blob) + b"x")
    with pytest.raises(ArchiveError, match="size"):
        verify_zip_against_manifest(result.zip_path, manifest)


def test_manifest_rejects_bad_input(tree: Path, tmp_path: Path) -> None:
    result = build_zip(tree, tmp_path / "pkg.zip")
    with pytest.raises(ArchiveError, match="reserved"):
        write_manifest(result, package_manifest={}, provenance={}, extra={"files": []})
    with pytest.raises(ArchiveError, match=r"\.zip"):
        manifest_path_for(tmp_path / "pkg.tar")
    bogus = tmp_path / "bogus.manifest.json"
    bogus.write_text('{"schema": "other/v9"}')
    with pytest.raises(ArchiveError, match="schema"):
        read_manifest(bogus)


def test_tree_is_left_untouched(tree: Path, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    build_zip(tree, tmp_path / "pkg.zip")
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before
    shutil.rmtree(tree)
