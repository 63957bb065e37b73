"""packager.hashing: the parallel, pooled hashing gives hashlib's digests, reuses its buffers, and the zip
stage built on it writes exactly the bytes the earlier single-pass implementation wrote."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from packager.archive import build_zip, hash_file
from packager.hashing import (
    CHUNK_SIZE,
    BufferPool,
    StreamHasher,
    digest_file,
    md5_file,
    pooled_chunks,
    sha256_file,
)


def stream(seed: bytes, n: int) -> bytes:
    """Deterministic pseudo-random bytes (sha256 in counter mode), the same on every machine."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + i.to_bytes(8, "little")).digest()
        i += 1
    return bytes(out[:n])


# Built by the implementation before parallel hashing (commit 28a0f28) from PINNED_TREE, with zlib 1.2.13:
# the zip's sha256, md5 and size. The deflated members depend on zlib's version, the stored ones do not.
PINNED_ZIP = (
    "9ee6d3f1dfc8b506d585fdd10d6297de46700919182404bb91619d0c1b49d125",
    "2a332f6778d2649d2558bd9f54c3f713",
    4287575,
)
PINNED_TREE = {
    "model.safetensors": stream(b"weights", 3 * CHUNK_SIZE + 12345),
    "weights.onnx": stream(b"onnx", CHUNK_SIZE),
    "weights.onnx_data": b"",
    "config.json": b'{"hidden_size": 384}\n' * 40,
    "sub/vocab.txt": stream(b"vocab", 70000).hex().encode(),
}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.mark.skipif(zlib.ZLIB_RUNTIME_VERSION != "1.2.13", reason="pinned bytes were deflated by zlib 1.2.13")
def test_zip_bytes_identical_to_previous_implementation(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", PINNED_TREE)
    result = build_zip(root, tmp_path / "out.zip")
    data = (tmp_path / "out.zip").read_bytes()
    assert (hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data)) == PINNED_ZIP
    assert (result.sha256, result.md5, result.size) == PINNED_ZIP


def test_member_digests_match_hashlib(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", PINNED_TREE)
    result = build_zip(root, tmp_path / "out.zip")
    for entry in result.files:
        data = PINNED_TREE[entry.path]
        assert (entry.size, entry.md5, entry.sha256) == (
            len(data),
            hashlib.md5(data).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        ), entry.path


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
def test_file_digests_match_hashlib(tmp_path: Path, size: int) -> None:
    data = stream(b"f", size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    assert hash_file(path) == (size, md5, sha)
    assert (md5_file(path), sha256_file(path), digest_file(path, "sha1")) == (
        md5,
        sha,
        hashlib.sha1(data).hexdigest(),
    )


@pytest.mark.parametrize("lanes", [[("md5", "sha256")], [("md5",), ("sha256",)], [("sha256",), ("md5",)]])
def test_buffers_are_reused_only_after_every_lane_hashed_them(tmp_path: Path, lanes: list) -> None:
    """Two small buffers for 40 chunks: any buffer refilled while a lane still hashes it would corrupt the
    digest; the order of results follows ``algorithms`` whatever the lanes."""
    data = stream(b"reuse", 40 * 4096 + 5)
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    pool = BufferPool(count=2, size=4096)
    with StreamHasher(pool=pool, lanes=lanes) as hasher, open(path, "rb", buffering=0) as handle:
        with pooled_chunks(handle, pool) as chunks:
            for view in chunks:
                hasher.update(view)
        assert hasher.hexdigests() == [hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()]
        # after the digest, the stream starts again empty
        hasher.update(b"abc")
        assert hasher.hexdigests() == [hashlib.md5(b"abc").hexdigest(), hashlib.sha256(b"abc").hexdigest()]
    assert len(pool._free) == 2, "every buffer is back in the pool"


def test_caller_buffers_are_copied_before_the_caller_reuses_them() -> None:
    buffer = bytearray(b"x" * 10000)
    with StreamHasher(lanes=[("md5",), ("sha256",)]) as hasher:
        hasher.update(buffer)
        buffer[:] = b"y" * 10000  # the caller reuses its buffer at once
        md5, sha = hasher.hexdigests()
    assert (md5, sha) == (hashlib.md5(b"x" * 10000).hexdigest(), hashlib.sha256(b"x" * 10000).hexdigest())


def test_lanes_must_cover_the_algorithms() -> None:
    with pytest.raises(ValueError, match="do not cover the algorithms"):
        StreamHasher(lanes=[("md5",)])
