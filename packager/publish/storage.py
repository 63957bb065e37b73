"""Object stores for package zips: ``gs://BUCKET/PREFIX`` (google-cloud-storage, extra ``gcs``) and
``file:///DIR`` (a local folder, e.g. a mounted share).

:func:`upload_zip` is the only way a zip gets into a store: it re-checks the zip against its verified
manifest first, never replaces an object holding different bytes unless ``force``, treats identical bytes
as a no-op, and verifies the stored object's md5 (and crc32c on GCS) afterwards. ``STORAGE_EMULATOR_HOST``
is honoured: the client then talks to the emulator with anonymous credentials.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from packager import atomic
from packager.archive import CHUNK_SIZE
from packager.errors import MissingExtraError, UsageError
from packager.hashing import md5_file
from packager.manifest import verify_zip_against_manifest
from packager.retry import redact_http_logs

from .errors import PublishError

ACCEPTED_STORES = "gs://BUCKET[/PREFIX] or file:///ABSOLUTE/DIR"


@dataclass(frozen=True)
class StoredObject:
    size: int
    md5: str  # hex
    crc32c: str | None = None  # hex, when the store reports one
    generation: int | None = None


class Store(Protocol):
    def url(self, name: str) -> str: ...
    def stat(self, name: str) -> StoredObject | None: ...
    def put(self, path: Path, name: str, replace: StoredObject | None) -> StoredObject: ...
    def public_url(self, name: str) -> str | None: ...


def check_store_url(url: str) -> str:
    """The store kind ('gs' or 'file') of an ``--upload`` URL; UsageError (before any packing) if none."""
    parts = urlsplit(url)
    if parts.scheme == "gs" and parts.netloc:
        return "gs"
    if parts.scheme == "file" and parts.path.startswith("/") and parts.netloc in ("", "localhost"):
        return "file"
    raise UsageError(f"--upload {url!r}: not a store URL (accepted: {ACCEPTED_STORES})")


def open_store(url: str) -> Store:
    """The store ``url`` names. The GCS client talks through urllib3, whose log records name resumable
    upload session URLs (their ``upload_id`` is as good as a credential): redacted, as every client's."""
    parts = urlsplit(url)
    redact_http_logs()
    if check_store_url(url) == "gs":
        return GcsStore(parts.netloc, parts.path.strip("/"))
    return FileStore(Path(unquote(parts.path)))


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def url(self, name: str) -> str:
        return (self.root / name).as_uri()

    def stat(self, name: str) -> StoredObject | None:
        path = self.root / name
        if not path.is_file():
            return None
        return StoredObject(size=path.stat().st_size, md5=md5_file(path))

    def put(self, path: Path, name: str, replace: StoredObject | None) -> StoredObject:
        atomic.sweep((self.root / name).parent, recursive=False)  # .partial copies of killed uploads
        with atomic.atomic_path(self.root / name) as tmp:
            shutil.copyfile(path, tmp)
        return self.stat(name)  # type: ignore[return-value]

    def public_url(self, name: str) -> str | None:
        return None


def _hex(b64: str | None) -> str | None:
    return base64.b64decode(b64).hex() if b64 else None


class GcsStore:
    def __init__(self, bucket: str, prefix: str) -> None:
        try:
            from google.api_core import exceptions as gexc
            from google.cloud import storage
        except ImportError:
            raise MissingExtraError("gs:// uploads", "gcs", "google.cloud.storage") from None
        self._gexc = gexc
        self.emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
        if self.emulator:
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(credentials=AnonymousCredentials(), project="weightpack")
        else:
            client = storage.Client()
        self.bucket_name, self.prefix = bucket, prefix
        self.bucket = client.bucket(bucket)

    def _name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(name)}"

    def stat(self, name: str) -> StoredObject | None:
        try:
            blob = self.bucket.get_blob(self._name(name))
        except self._gexc.GoogleAPIError as exc:
            raise PublishError(f"{self.url(name)}: cannot read object metadata: {exc}") from None
        return None if blob is None else self._stored(blob)

    @staticmethod
    def _stored(blob: Any) -> StoredObject:
        return StoredObject(
            size=int(blob.size),
            md5=_hex(blob.md5_hash) or "",
            crc32c=_hex(blob.crc32c),
            generation=blob.generation,
        )

    def put(self, path: Path, name: str, replace: StoredObject | None) -> StoredObject:
        blob = self.bucket.blob(self._name(name))
        # A generation precondition: never clobber an object that appeared (or changed) since stat().
        generation = replace.generation if replace is not None else 0
        try:
            blob.upload_from_filename(
                str(path), content_type="application/zip", checksum="md5", if_generation_match=generation
            )
            blob = self.bucket.get_blob(self._name(name))
        except self._gexc.PreconditionFailed:
            raise PublishError(
                f"{self.url(name)}: the object changed while uploading (another writer?); nothing replaced"
            ) from None
        except self._gexc.GoogleAPIError as exc:
            raise PublishError(f"{self.url(name)}: upload failed: {type(exc).__name__}: {exc}") from None
        if blob is None:
            raise PublishError(f"{self.url(name)}: upload reported success but the object is missing")
        return self._stored(blob)

    def public_url(self, name: str) -> str | None:
        base = self.emulator or "https://storage.googleapis.com"
        return f"{base}/{self.bucket_name}/{quote(self._name(name))}"


def crc32c_hex(path: Path) -> str | None:
    try:
        import google_crc32c
    except ImportError:
        return None
    value = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            value.update(chunk)
    return value.digest().hex()


@dataclass
class UploadResult:
    url: str
    action: str  # "uploaded", "unchanged" or "replaced"
    public: str  # "ok", "not public", "n/a"


def upload_zip(
    store: Store, zip_path: Path, manifest: dict, *, force: bool, timeout_s: float = 60.0
) -> UploadResult:
    """Upload one verified zip; see the module docstring for the rules."""
    verify_zip_against_manifest(zip_path, manifest)  # the bytes are still the verified ones
    want = manifest["zip"]
    name = zip_path.name
    existing = store.stat(name)
    if existing is not None and existing.md5 == want["md5"] and existing.size == want["size"]:
        return UploadResult(store.url(name), "unchanged", _check_public(store, name, want["size"], timeout_s))
    if existing is not None and not force:
        raise PublishError(
            f"{store.url(name)} already exists with different content (md5 {existing.md5}, "
            f"{existing.size} bytes; ours {want['md5']}, {want['size']} bytes); nothing uploaded. "
            "Pass --force to replace it."
        )
    stored = store.put(zip_path, name, existing)
    problems = []
    if stored.size != want["size"] or stored.md5 != want["md5"]:
        problems.append(f"md5 {stored.md5} / {stored.size} bytes, expected {want['md5']} / {want['size']}")
    if stored.crc32c is not None:
        local = crc32c_hex(zip_path)
        if local is not None and local != stored.crc32c:
            problems.append(f"crc32c {stored.crc32c}, expected {local}")
    if problems:
        raise PublishError(
            f"{store.url(name)}: the stored object does not match the zip: {'; '.join(problems)}"
        )
    action = "replaced" if existing is not None else "uploaded"
    return UploadResult(store.url(name), action, _check_public(store, name, want["size"], timeout_s))


def _check_public(store: Store, name: str, size: int, timeout_s: float) -> str:
    """Fetch the first byte of the public URL: 200/206 with the object's size is "ok"; 401/403 means the
    bucket is not public."""
    url = store.public_url(name)
    if url is None:
        return "n/a"
    import requests

    redact_http_logs()
    try:
        response = requests.get(url, headers={"Range": "bytes=0-0"}, timeout=timeout_s)
    except requests.RequestException as exc:
        raise PublishError(f"{url}: public URL check failed: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    if status in (401, 403):
        return "not public"
    total = response.headers.get("Content-Length")
    if status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
    if status not in (200, 206) or (total and total.isdigit() and int(total) != size):
        raise PublishError(f"{url}: public URL answered {status} (size {total}), expected 200 ({size} bytes)")
    return "ok"
