"""``gs://bucket/object``: one object from Google Cloud Storage (or its emulator), cached like https.

google-cloud-storage is an optional extra, imported only here. ``STORAGE_EMULATOR_HOST`` is honoured by the
client itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

from .. import atomic
from ..errors import MissingExtraError, NetworkError, SourceError
from ..retry import RetryPolicy, mount
from ._types import Located, ProgressCallback
from .hash_cache import HashCache
from .https import INCOMPLETE, cache_paths, finish, reuse
from .spec import SourceSpec


def fetch_gs(
    spec: SourceSpec, *, cache_dir: Path, hashes: HashCache, progress: ProgressCallback | None
) -> Located:
    try:
        import requests
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import GoogleAuthError
        from google.cloud import storage
    except ImportError:
        raise MissingExtraError("gs:// sources", "gcs", "google.cloud.storage") from None

    bucket_name, _, object_name = spec.location.partition("/")
    desc = f"gs://{spec.location}"
    final, lock, meta = cache_paths(Path(cache_dir), desc, kind="gs")
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if not reuse(final, None, hashes, desc):
            try:
                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    client = storage.Client(credentials=AnonymousCredentials(), project="weightpack")
                else:
                    client = storage.Client()
                _retry_as_every_download(client)
                blob = client.bucket(bucket_name).get_blob(object_name, retry=None)
                if blob is None:
                    raise SourceError(f"{desc}: object not found")
                tmp = final.with_name(final.name + INCOMPLETE)
                start = tmp.stat().st_size if tmp.exists() else 0
                if blob.size is not None and start >= blob.size:
                    tmp.unlink()
                    start = 0
                if progress:
                    progress(desc, start, blob.size)
                with open(tmp, "ab" if start else "wb") as handle:
                    if start:
                        blob.download_to_file(handle, start=start, checksum=None, retry=None)
                    else:
                        blob.download_to_file(handle, retry=None)
            except (gexc.GoogleAPIError, GoogleAuthError, requests.RequestException) as exc:
                raise _classified(desc, exc, gexc) from None
            finish(tmp, final, None, hashes, desc, blob.size)
            if progress:
                progress(desc, blob.size or 0, blob.size)
            atomic.write_json(meta, {"url": desc, "resolved": f"{desc}#generation={blob.generation}"})
    try:
        resolved = json.loads(meta.read_text("utf-8"))["resolved"]
    except (OSError, ValueError, KeyError):
        resolved = desc
    return Located(path=final.parent, resolved=resolved, files=[(final.name, final)])


def _classified(desc: str, exc: BaseException, gexc: object) -> SourceError:
    """A refusal about the object named (not found, forbidden: exit 2), or the environment's: no
    credentials, a failing or unreachable service after the client's retries (exit 3)."""
    message = f"{desc}: download failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, (gexc.NotFound, gexc.Forbidden, gexc.Unauthorized, gexc.BadRequest)):  # type: ignore[attr-defined]
        return SourceError(message)
    if type(exc).__module__.startswith("google.auth"):
        return NetworkError(
            f"{desc}: no usable Google credentials ({exc}); run 'gcloud auth application-default login' "
            "or set GOOGLE_APPLICATION_CREDENTIALS (STORAGE_EMULATOR_HOST for an emulator)"
        )
    return NetworkError(message)


def _retry_as_every_download(client: object) -> None:
    """The client's requests session (google-auth's, the one every storage call goes through) retries by
    the one policy of :mod:`packager.retry` (backoff, ``Retry-After``, 4xx final but 408/429), and the
    library's own retry is turned off on each call (``retry=None``), so the two never stack."""
    session = client._http  # type: ignore[attr-defined]  # google.cloud.client.Client's transport
    if getattr(client, "_bucket_metadata_cache", None) is not None:  # google-cloud-storage >= 3.x
        # it fetches bucket metadata in a daemon thread of its own, which would go on retrying after
        # the download has ended; one object's download needs none of it
        client._bucket_metadata_cache = None  # type: ignore[attr-defined]
    retry = RetryPolicy.from_env().retry()
    for scheme in ("https://", "http://"):  # the API, or an emulator (STORAGE_EMULATOR_HOST)
        mount(session, scheme, retry)
