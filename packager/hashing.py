"""Every file hash weightpack takes (zip members, zips, source files, downloads) comes from this module.

The zip stage needs five passes over each byte: md5 and sha256 of the member, md5 and sha256 of the zip,
and the CRC. hashlib and zlib release the GIL on large buffers, so the digests run on worker threads while
the main thread reads, CRCs and writes. Each byte is read once into a small pool of reusable buffers
(:class:`BufferPool`); a buffer goes back to the pool only when every worker that was handed a view of it
is done with it, so memory stays at a few chunks whatever the file size and no chunk is copied.

How digests are spread over threads follows the machine (:func:`default_lanes`): on two cores, one thread
per stream (md5 then sha256 of the same L2-hot chunk) keeps both cores busy with the least hand-off; on
four or more, one thread per algorithm so that md5, the slowest, sets the pace alone.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

CHUNK_SIZE = 1 << 20
ALGORITHMS = ("md5", "sha256")
POOL_BUFFERS = 6
_QUEUE_ITEMS = 8  # bounds queued non-pooled data (zip headers, deflated output) to a few chunks
_DIGEST = object()
_STOP = object()


def new_hash(name: str) -> Any:
    """A hashlib object; md5 is a checksum here, not security (so FIPS builds allow it)."""
    return hashlib.new(name, usedforsecurity=False)


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_lanes(algorithms: Sequence[str] = ALGORITHMS) -> list[tuple[str, ...]]:
    """Algorithms grouped per worker thread: all on one below four CPUs, else one thread each."""
    if usable_cpus() >= 4:
        return [(name,) for name in algorithms]
    return [tuple(algorithms)]


class BufferPool:
    """Reusable chunk buffers, each counted out to its readers and reused only when all gave it back."""

    def __init__(self, count: int = POOL_BUFFERS, size: int = CHUNK_SIZE) -> None:
        self._buffers = {id(b): b for b in (bytearray(size) for _ in range(count))}
        self._holds = dict.fromkeys(self._buffers, 0)
        self._free = list(self._buffers.values())
        self._cond = threading.Condition()

    def acquire(self) -> bytearray:
        """A free buffer, held once by the caller (waits while all are in use)."""
        with self._cond:
            while not self._free:
                self._cond.wait()
            buffer = self._free.pop()
            self._holds[id(buffer)] = 1
            return buffer

    def owns(self, data: object) -> bool:
        return isinstance(data, memoryview) and id(data.obj) in self._holds

    def retain(self, view: memoryview) -> None:
        with self._cond:
            self._holds[id(view.obj)] += 1

    def release(self, buffer: object) -> None:
        with self._cond:
            key = id(buffer)
            self._holds[key] -= 1
            if self._holds[key] == 0:
                self._free.append(self._buffers[key])
                self._cond.notify()


class _Lane(threading.Thread):
    """One worker thread updating a group of digests with whatever its inbox receives, in order."""

    def __init__(self, algorithms: tuple[str, ...], pool: BufferPool | None) -> None:
        super().__init__(daemon=True, name=f"hash-{'+'.join(algorithms)}")
        self.algorithms = algorithms
        self.inbox: queue.Queue[Any] = queue.Queue(_QUEUE_ITEMS)
        self.outbox: queue.Queue[Any] = queue.Queue(1)
        self._pool = pool

    def run(self) -> None:
        digests = [new_hash(name) for name in self.algorithms]
        error: BaseException | None = None
        while (item := self.inbox.get()) is not _STOP:
            if item is _DIGEST:
                self.outbox.put(error or [d.hexdigest() for d in digests])
                digests, error = [new_hash(name) for name in self.algorithms], None
                continue
            try:
                if error is None:
                    for digest in digests:
                        digest.update(item)
            except BaseException as exc:  # reported by hexdigests(), never lost in a thread
                error = exc
            finally:
                if self._pool is not None and self._pool.owns(item):
                    self._pool.release(item.obj)


class StreamHasher:
    """Digests of one byte stream (md5 + sha256 by default) computed on worker threads.

    :meth:`update` takes ``bytes`` as they are, views of a :class:`BufferPool` buffer by reference (the
    buffer is held until every lane has hashed it), and copies anything else. :meth:`hexdigests` returns
    the digests of everything since the previous call and starts again empty.
    """

    def __init__(
        self,
        algorithms: Sequence[str] = ALGORITHMS,
        pool: BufferPool | None = None,
        lanes: list[tuple[str, ...]] | None = None,
    ) -> None:
        self.algorithms = tuple(algorithms)
        self._pool = pool
        self._lanes = [_Lane(group, pool) for group in (lanes or default_lanes(self.algorithms))]
        if sorted(n for lane in self._lanes for n in lane.algorithms) != sorted(self.algorithms):
            raise ValueError(f"lanes {lanes} do not cover the algorithms {self.algorithms} exactly once")
        for lane in self._lanes:
            lane.start()

    def update(self, data: bytes | memoryview | bytearray) -> None:
        if self._pool is not None and self._pool.owns(data):
            for lane in self._lanes:
                self._pool.retain(data)  # type: ignore[arg-type]
                lane.inbox.put(data)
            return
        if not isinstance(data, bytes):  # a caller's reusable buffer must not change under a worker
            data = bytes(data)
        for lane in self._lanes:
            lane.inbox.put(data)

    def hexdigests(self) -> list[str]:
        """Hex digests in ``algorithms`` order, of everything passed since the last call."""
        results: dict[str, str] = {}
        for lane in self._lanes:
            lane.inbox.put(_DIGEST)
        for lane in self._lanes:
            got = lane.outbox.get()
            if isinstance(got, BaseException):
                raise got
            results.update(zip(lane.algorithms, got, strict=True))
        return [results[name] for name in self.algorithms]

    def close(self) -> None:
        for lane in self._lanes:
            lane.inbox.put(_STOP)
        for lane in self._lanes:
            lane.join()

    def __enter__(self) -> StreamHasher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class HashingWriter:
    """A write-only, non-seekable file wrapper that hashes every byte on its way to ``raw``.

    Because it cannot seek, ``zipfile`` writes each member's CRC and sizes in a data descriptor after the
    data (flag bit 3) instead of seeking back to patch the local header; the central directory carries
    them as usual. That is what lets the zip's own digests come out of the single write pass.
    """

    def __init__(self, raw: BinaryIO, hasher: StreamHasher) -> None:
        self._raw = raw
        self._hasher = hasher
        self._pos = 0

    def write(self, data: bytes | memoryview) -> int:
        size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        self._raw.write(data)
        self._hasher.update(data)
        self._pos += size
        return size

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return False

    def seek(self, *_args: object) -> int:
        raise OSError("HashingWriter is not seekable")

    def flush(self) -> None:
        self._raw.flush()


@contextmanager
def pooled_chunks(handle: BinaryIO, pool: BufferPool) -> Iterator[Iterator[memoryview]]:
    """Chunks of ``handle`` read into pool buffers; each is given back after the loop body moves on."""

    def chunks() -> Iterator[memoryview]:
        while True:
            buffer = pool.acquire()
            try:
                n = handle.readinto(buffer)  # type: ignore[attr-defined]
                if not n:
                    return
                # not released here: lanes may still hold this view; the pool hold protects the bytes
                yield memoryview(buffer)[:n]
            finally:
                pool.release(buffer)

    yield chunks()


def hash_file(path: Path) -> tuple[int, str, str]:
    """(size, md5 hex, sha256 hex) of a file, each byte read once."""
    size = 0
    pool = BufferPool()
    with StreamHasher(pool=pool) as hasher, open(path, "rb", buffering=0) as handle:
        with pooled_chunks(handle, pool) as chunks:
            for view in chunks:
                hasher.update(view)
                size += len(view)
        md5, sha256 = hasher.hexdigests()
    return size, md5, sha256


def digest_file(path: Path, algorithm: str = "sha256") -> str:
    """One hex digest of a file, read in chunks (never whole into memory)."""
    digest = new_hash(algorithm)
    buffer = bytearray(CHUNK_SIZE)
    with open(path, "rb", buffering=0) as handle, memoryview(buffer) as view:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return digest_file(path, "sha256")


def md5_file(path: Path) -> str:
    return digest_file(path, "md5")
