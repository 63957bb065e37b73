"""Seals on what a re-run reuses: a record is believed only when this cache's key sealed it, over its
content and the files it vouches for.

A re-run keeps a package's passed checks (``OUT/.verified/STEM-DEVICE.json``) and a variant's reference
outputs (the golden ``.npz`` and its ``.json`` sidecar) instead of measuring them again
(:mod:`packager.reuse`). What lies in the output folder is evidence, not truth, as the hash cache's
entries are (:mod:`packager.sources.hash_cache`): a record edited to say ``max_abs 12345, passed true``
must not be replayed, nor a golden whose bytes changed believed.

So each record carries ``seal``: the sha256 of every file it vouches for (the goldens it names, relative to
the record's folder root) and an HMAC-SHA256 over its canonical JSON (sorted keys) and those hashes, keyed by
the cache's random owner-only key (``CACHE/hashes.key``, :func:`~packager.sources.hash_cache.load_key`, the
hash cache's own). A record whose seal does not hold (edited, copied from another machine or cache, a
golden changed or gone, the key deleted) is not reused: the package is checked again, the reference
computed again, and :attr:`Seal.notice` says why, once per record. The zip a verification is about is
bound through the record's key (it holds the zip's sha256, measured from its bytes by this run).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packager.hashing import sha256_file
from packager.sources.hash_cache import KEY_FILE, load_key

SEAL = "seal"
"""The key of a record that holds its seal: ``{"files": {path: sha256}, "mac": hex}``."""


def _quiet(message: str) -> None:
    return None


def canonical(data: Any) -> Any:
    """``data`` as it reads back from the JSON file it is written to (tuples become lists, objects the
    text ``default=str`` gives them): what is sealed is what a re-run reads."""
    return json.loads(json.dumps(data, default=str))


@dataclass(frozen=True)
class Seal:
    """One run's sealing key and where it says that a record was not believed."""

    key: bytes
    """Empty: the cache's key cannot be read or made; nothing is sealed, nothing believed."""
    notice: Callable[[str], None] = field(default=_quiet, compare=False)

    @classmethod
    def of_cache(cls, cache_dir: Path, notice: Callable[[str], None] = _quiet) -> Seal:
        """The seal of ``--cache-dir`` (its key made on first use)."""
        with contextlib.suppress(OSError):
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        return cls(load_key(Path(cache_dir) / KEY_FILE), notice)

    def _mac(self, body: Any, files: dict[str, str]) -> str:
        message = json.dumps([body, files], sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def close(self, record: dict[str, Any], root: Path, files: Iterable[str]) -> dict[str, Any]:
        """``record`` (made canonical) with its seal over the files named (paths under ``root``)."""
        body = canonical({k: v for k, v in record.items() if k != SEAL})
        if not self.key:
            return body
        hashes = {name: sha256_file(Path(root) / name) for name in sorted(set(files))}
        return {**body, SEAL: {"files": hashes, "mac": self._mac(body, hashes)}}

    def broken(self, record: dict[str, Any], root: Path) -> str | None:
        """Why ``record``'s seal does not hold (None: it does), briefly."""
        seal = record.get(SEAL)
        if not self.key:
            return f"no key to check its seal ({KEY_FILE} in the cache cannot be read or made)"
        if not isinstance(seal, dict) or not isinstance(seal.get("files"), dict):
            return "it is not sealed (written by hand or by an older weightpack)"
        body = {k: v for k, v in record.items() if k != SEAL}
        if not hmac.compare_digest(self._mac(body, seal["files"]), str(seal.get("mac"))):
            return "its seal does not hold (edited since, or sealed with another cache's key)"
        for name, digest in seal["files"].items():
            path = Path(root) / name
            if not path.is_file():
                return f"{name} is gone"
            if sha256_file(path) != digest:
                return f"{name} changed since it was sealed"
        return None

    def holds(self, record: dict[str, Any], root: Path, what: str, then: str) -> bool:
        """Whether ``record``'s seal holds; when not, says so once: ``WHAT not reused: WHY; THEN``."""
        why = self.broken(record, root)
        if why is not None:
            self.notice(f"{what} not reused: {why}; {then}")
        return why is None
