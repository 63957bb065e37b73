"""A Hugging Face Hub-compatible HTTP server on loopback, serving what ``snapshot_download`` calls.

Endpoints (what huggingface_hub 2.4.0 requests; see ``hf_api.repo_info``/``list_repo_tree`` and
``file_download.get_hf_file_metadata``/``http_get``):

- ``GET /api/models/{repo}/revision/{rev}`` -> ``{"id", "sha", "siblings", ...}``
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true&expand=false``
  -> ``[{type, oid, size, path, lfs?}]``
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` -> the file, with ``X-Repo-Commit``, a quoted ``ETag`` (the
  sha256 for LFS files, the git blob sha1 otherwise), ``Content-Length``, ``Range`` support; never
  ``X-Xet-Hash``.

Errors carry ``X-Error-Code`` like the real Hub: ``RepoNotFound`` (401), ``GatedRepo`` (401 anonymous,
403 with a token that was not granted), ``RevisionNotFound`` (404), ``EntryNotFound`` (404). As on the Hub,
a gated repo's metadata and tree are public; only file downloads need a granted token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pytest

from ._base import LoopbackServer, QuietHandler, parse_range

LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".pth", ".h5", ".msgpack")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) > 10 * 1024 * 1024


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]


@dataclass
class Repo:
    refs: dict[str, Commit] = field(default_factory=dict)  # branch/tag name or sha -> commit
    gated: bool = False
    granted_tokens: set[str] = field(default_factory=set)


class HfHubServer(LoopbackServer):
    """Serve ``{repo_id: {revision: {path: bytes}}}``; ``.url`` is what ``HF_ENDPOINT`` should hold."""

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, Repo] = {}

    def add_repo(
        self,
        repo_id: str,
        revisions: dict[str, dict[str, bytes]],
        *,
        gated: bool = False,
        granted_tokens: tuple[str, ...] = (),
    ) -> dict[str, str]:
        """Add (or replace) a repo; returns ``{revision: commit sha}`` (40 hex, derived from the content)."""
        repo = Repo(gated=gated, granted_tokens=set(granted_tokens))
        shas = {}
        for name, files in revisions.items():
            digest = hashlib.sha1(f"{repo_id}\0{name}\0".encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
            commit = Commit(sha=digest.hexdigest(), files=dict(files))
            repo.refs[name] = commit
            repo.refs[commit.sha] = commit
            shas[name] = commit.sha
        self.repos[repo_id] = repo
        return shas

    def add_gated_repo(
        self, repo_id: str, files: dict[str, bytes], granted_tokens: tuple[str, ...] = ()
    ) -> str:
        return self.add_repo(repo_id, {"main": files}, gated=True, granted_tokens=granted_tokens)["main"]

    def find_repo(self, path: str) -> tuple[str, str] | None:
        """Split ``path`` into (known repo id, rest), longest repo id first."""
        for repo_id in sorted(self.repos, key=len, reverse=True):
            if path.startswith(repo_id + "/"):
                return repo_id, path[len(repo_id) + 1 :]
        return None

    def authorization_tokens(self) -> list[str]:
        """Bearer tokens seen so far, in order."""
        out = []
        for r in self.requests:
            auth = r.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                out.append(auth[7:])
        return out


class _HubHandler(QuietHandler):
    app: HfHubServer

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    # -- helpers ---------------------------------------------------------------------------------------
    def _error(self, status: int, code: str, message: str, head: bool, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self.send_body(status, json.dumps({"error": message}).encode(), headers, head)

    def _json(self, data: object, head: bool) -> None:
        self.send_body(200, json.dumps(data).encode(), {"Content-Type": "application/json"}, head)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    # -- routing ---------------------------------------------------------------------------------------
    def _handle(self, head: bool) -> None:
        parts = urlsplit(self.path)
        self.app.record(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        path = unquote(parts.path)
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/") :], parts.query, head)
        found = self.app.find_repo(path.lstrip("/"))
        if found is None:
            return self._error(401, "RepoNotFound", "Repository not found", head)
        repo_id, rest = found
        if not rest.startswith("resolve/"):
            return self._error(404, "NotFound", f"no route for {path}", head)
        return self._resolve(repo_id, rest[len("resolve/") :], head)

    def _api(self, rest: str, query: str, head: bool) -> None:
        found = self.app.find_repo(rest)
        if found is None:
            return self._error(401, "RepoNotFound", "Repository not found", head)
        repo_id, rest = found
        repo = self.app.repos[repo_id]
        kind, _, tail = rest.partition("/")
        if kind == "revision":
            commit = repo.refs.get(tail)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {tail}", head)
            return self._json(
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": commit.sha,
                    "private": False,
                    "gated": "auto" if repo.gated else False,
                    "disabled": False,
                    "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(commit.files)],
                },
                head,
            )
        if kind == "tree":
            rev, _, sub = tail.partition("/")
            commit = repo.refs.get(rev)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return self._json(self._tree(commit, sub.strip("/"), "recursive=true" in query), head)
        return self._error(404, "NotFound", f"no API route {kind}", head)

    @staticmethod
    def _tree(commit: Commit, sub: str, recursive: bool) -> list[dict[str, object]]:
        prefix = f"{sub}/" if sub else ""
        entries: dict[str, dict[str, object]] = {}
        for path, data in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            segments = rel.split("/")
            for i in range(1, len(segments)):  # parent folders
                folder = prefix + "/".join(segments[:i])
                if recursive or i == 1:
                    entries.setdefault(
                        folder, {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
                    )
            if not recursive and len(segments) > 1:
                continue
            entry: dict[str, object] = {
                "type": "file",
                "oid": git_blob_sha1(data),
                "size": len(data),
                "path": path,
            }
            if is_lfs(path, data):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            entries[path] = entry
        return list(entries.values())

    def _resolve(self, repo_id: str, rest: str, head: bool) -> None:
        repo = self.app.repos[repo_id]
        # the revision is URL-quoted with safe="" by the client, so after unquoting it may contain '/':
        # try the longest known ref that prefixes the rest.
        for ref in sorted(repo.refs, key=len, reverse=True):
            if rest.startswith(ref + "/"):
                commit, filename = repo.refs[ref], rest[len(ref) + 1 :]
                break
        else:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest.split('/')[0]}", head)
        if repo.gated and self._token() not in repo.granted_tokens:
            status = 403 if self._token() else 401
            message = (
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            )
            return self._error(status, "GatedRepo", message, head)
        data = commit.files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist", head, commit=commit.sha)
        etag = hashlib.sha256(data).hexdigest() if is_lfs(filename, data) else git_blob_sha1(data)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
        }
        rng = None if head else parse_range(self.headers.get("Range"), len(data))
        if rng is None:
            return self.send_body(200, data, headers, head)
        start, end = rng
        if start >= len(data):
            return self.send_body(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return self.send_body(206, data[start : end + 1], headers, head)


HfHubServer.handler_class = _HubHandler


@pytest.fixture
def hf_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HfHubServer]:
    """A started :class:`HfHubServer`; ``HF_ENDPOINT`` points at it and no ambient token leaks in."""
    server = HfHubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    # huggingface_hub reads HF_ENDPOINT once, at import; code under test must pass endpoint= explicitly, so
    # its import-time constants are left alone here. Its best-effort agent-harness registry fetch does use
    # them (it would go to huggingface.co): switch that off, nothing in a test may leave loopback.
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(_detect_agent, "_fetch_registry", lambda: None, raising=False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    # online, whatever the library read at import (tests/hermetic.py clears the caller's HF_HUB_OFFLINE
    # before that; this holds for an import made under another test's setting too)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield server
    finally:
        server.stop()
