"""``hf://org/repo@revision``: a Hugging Face Hub snapshot, through ``huggingface_hub.snapshot_download``.

The download itself (resumable, locked, atomic, etag-verified) is huggingface_hub's; this module passes the
endpoint and offline mode at call time (the library reads ``HF_ENDPOINT``/``HF_HUB_OFFLINE`` only at import),
maps its errors to ours and never lets the token reach a message or the provenance.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import GatedRepoAccessError, NetworkError, SourceError, WriteError, disk_cause
from ._types import Located, ProgressCallback
from .hash_cache import iter_files
from .spec import SourceSpec

_TRUE = {"1", "true", "yes", "on"}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def fetch_hf(
    spec: SourceSpec,
    *,
    cache_dir: Path,
    allow_patterns: list[str] | None,
    token: str | None,
    progress: ProgressCallback | None,
) -> Located:
    import httpx2
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import filter_repo_objects

    repo, revision = spec.location, spec.revision or "main"
    token = token or os.environ.get("HF_TOKEN") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    desc = f"hf://{repo}@{revision}"
    if progress:
        progress(desc, 0, None)
    try:
        snapshot = snapshot_download(
            repo,
            revision=revision,
            allow_patterns=allow_patterns,
            cache_dir=Path(cache_dir) / "hf",
            token=token,
            endpoint=endpoint,
            local_files_only=_offline(),
        )
    except GatedRepoError:  # before RepositoryNotFoundError: it is a subclass
        raise GatedRepoAccessError(
            f"{desc}: the repo is gated and this account has no access yet. Accept its terms at "
            f"https://huggingface.co/{repo} , then set HF_TOKEN to a token of that account"
            + (" (the token given was refused)" if token else "")
            + "."
        ) from None
    except RepositoryNotFoundError:
        raise SourceError(
            f"{desc}: repo '{repo}' not found or private; check the name, or set HF_TOKEN if it is private"
        ) from None
    except RevisionNotFoundError:
        raise SourceError(
            f"{desc}: revision '{revision}' not found in '{repo}'; "
            "use a branch, tag or commit sha that exists"
        ) from None
    except LocalEntryNotFoundError as exc:
        where = "offline mode (HF_HUB_OFFLINE) is on" if _offline() else "the Hub could not be reached"
        kind = SourceError if _offline() else NetworkError  # unreachable: the network, exit 3
        raise kind(
            f"{desc}: not in the local cache and {where}: {_scrub(str(exc), token).splitlines()[0]}"
        ) from None
    except EntryNotFoundError as exc:
        raise SourceError(f"{desc}: a file is missing upstream: {_scrub(str(exc), token)}") from None
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        detail = _scrub(str(exc), token)
        status = getattr(getattr(exc, "response", None), "status_code", None)
        refused = isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
        if disk_cause(exc) is not None:
            raise WriteError(f"{desc}: download failed: {type(exc).__name__}: {detail}") from None
        kind = SourceError if refused else NetworkError  # a failing or unreachable Hub: exit 3
        raise kind(f"{desc}: download failed: {type(exc).__name__}: {detail}") from None

    path = Path(snapshot)
    all_files = dict(iter_files(path))
    # The snapshot folder is shared per commit: earlier fetches with other patterns may have left more files.
    wanted = list(filter_repo_objects(sorted(all_files), allow_patterns=allow_patterns))
    files = [(rel, all_files[rel]) for rel in wanted]
    if not files:
        raise SourceError(f"{desc}: no files matched allow_patterns={allow_patterns!r}")
    if progress:
        total = sum(p.stat().st_size for _, p in files)
        progress(desc, total, total)
    extra = {"repo_id": repo}
    if endpoint:
        extra["endpoint"] = endpoint
    return Located(path=path, resolved=path.name, files=files, extra=extra)
