"""Streaming hashes: md5 + sha256 computed on worker threads from the same chunks that are written.

hashlib releases the GIL on large buffers, so each digest runs on its own thread while the main thread
reads, CRCs and writes; chunks are immutable ``bytes`` handed over through small bounded queues, so memory
stays at a few chunks whatever the file size.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

CHUNK_SIZE = 1 << 20
ALGORITHMS = ("md5", "sha256")
_MAX_PENDING = 4
_DIGEST = object()


def _new(name: str) -> Any:
    return hashlib.new(name, usedforsecurity=False)


class ParallelHasher:
    """md5 and sha256 of a byte stream, one worker thread per algorithm; reusable via :meth:`hexdigests`."""

    def __init__(self, algorithms: tuple[str, ...] = ALGORITHMS) -> None:
        self._inboxes: list[queue.Queue[Any]] = [queue.Queue(_MAX_PENDING) for _ in algorithms]
        self._outboxes: list[queue.Queue[Any]] = [queue.Queue(1) for _ in algorithms]
        self._threads = [
            threading.Thread(target=self._work, args=(name, i, o), daemon=True, name=f"hash-{name}")
            for name, i, o in zip(algorithms, self._inboxes, self._outboxes, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _work(name: str, inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        digest = _new(name)
        while True:
            item = inbox.get()
            if item is None:
                return
            if item is _DIGEST:
                outbox.put(digest.hexdigest())
                digest = _new(name)
            else:
                digest.update(item)

    def update(self, data: bytes) -> None:
        if not isinstance(data, bytes):  # a caller's reusable buffer must not change under the worker
            data = bytes(data)
        for inbox in self._inboxes:
            inbox.put(data)

    def hexdigests(self) -> list[str]:
        """The digests of everything passed since the last call; the hashers restart empty."""
        for inbox in self._inboxes:
            inbox.put(_DIGEST)
        return [outbox.get() for outbox in self._outboxes]

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> ParallelHasher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class HashingWriter:
    """A write-only, non-seekable file wrapper that hashes every byte on its way to ``raw``.

    Because it cannot seek, ``zipfile`` writes each member's CRC and sizes in a data descriptor after the
    data (flag bit 3) instead of seeking back to patch the local header; the central directory carries
    them as usual. That is what lets the zip's own md5/sha256 come out of the single write pass.
    """

    def __init__(self, raw: Any, hasher: ParallelHasher) -> None:
        self._raw = raw
        self._hasher = hasher
        self._pos = 0

    def write(self, data: bytes) -> int:
        data = bytes(data) if not isinstance(data, bytes) else data
        self._raw.write(data)
        self._hasher.update(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return False

    def seek(self, *_args: object) -> int:
        raise OSError("HashingWriter is not seekable")

    def flush(self) -> None:
        self._raw.flush()


def hash_file(path: Path) -> tuple[int, str, str]:
    """(size, md5 hex, sha256 hex) of a file, read once in 1 MiB chunks."""
    size = 0
    with ParallelHasher() as hasher, open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
        md5, sha256 = hasher.hexdigests()
    return size, md5, sha256
