"""One HTTP retry policy for every download (packager.retry: urllib3's ``Retry``, backoff, 4xx final except
408/429, ``Retry-After`` honoured): verify-remote's package downloads, ``https://`` and ``gs://`` sources.

Real loopback servers count the requests and record when each arrived; the waits are real (small backoff
factors). Nothing is asserted about speed, only that a retry waited at all (at least the backoff or the
``Retry-After`` asked for) and that a final answer is not retried."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest
import requests

from packager.errors import SourceError
from packager.publish.download import download
from packager.publish.errors import PublishError
from packager.retry import RetryPolicy
from tests.servers._base import LoopbackServer, QuietHandler

BODY = b"weights" * 1000
MD5 = hashlib.md5(BODY).hexdigest()
BASE_S = 0.05


class TimedServer(LoopbackServer):
    """Answers each request with the next scripted ``(status, headers)`` (``"drop"``: half the body, then
    the connection closed); then 200 with :data:`BODY`, or, with ``upstream``, what that server answers.
    Records when each request arrived."""

    def __init__(self, *answers: Any, upstream: str | None = None) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.times: list[float] = []
        self.upstream = upstream

    def gaps(self) -> list[float]:
        """Time between each request to the first request's path and the next one (its retries)."""
        mine = [t for t, r in zip(self.times, self.requests, strict=True) if r.path == self.requests[0].path]
        return [b - a for a, b in itertools.pairwise(mine)]


class _Handler(QuietHandler):
    app: TimedServer

    def do_GET(self) -> None:
        self.app.times.append(time.monotonic())
        self.app.record(self.command, self.path, dict(self.headers))
        answer = self.app.answers.popleft() if self.app.answers else (200, {})
        if answer == "drop":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[: len(BODY) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        status, headers = answer
        if status == 200 and self.app.upstream:
            return self._forward()
        self.send_body(status, BODY if status == 200 else b"busy", headers, False)

    def _forward(self) -> None:
        r = requests.get(self.app.upstream + self.path, headers={"Accept-Encoding": "identity"}, timeout=30)
        keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "x-goog-generation")}
        self.send_body(r.status_code, r.content, keep, False)


TimedServer.handler_class = _Handler


class Client:
    """What :func:`packager.publish.download.download` needs of a registry client: its retry policy."""

    def __init__(self, attempts: int = 4, base: float = BASE_S, cap: float = 2.0) -> None:
        self.policy = RetryPolicy(attempts=attempts, base_delay_s=base, max_delay_s=cap, timeout_s=10)


def fetch_package_file(server: TimedServer, tmp_path: Path, client: Client | None = None) -> Path:
    with server:
        record = {"fileHandle": "weights.bin", "md5Hash": MD5, "downloadUrl": f"{server.url}/weights.bin"}
        download(client or Client(), record, tmp_path / "pkg")
    return tmp_path / "pkg" / "weights.bin"


@pytest.mark.parametrize("status", [503, 429, 408, 500])
def test_a_busy_answer_is_retried_after_a_backoff(status: int, tmp_path: Path) -> None:
    """verify-remote retried a 429/503 back to back, with no wait at all."""
    server = TimedServer((status, {}), (status, {}))
    assert fetch_package_file(server, tmp_path).read_bytes() == BODY
    assert len(server.times) == 3
    first, second = server.gaps()
    assert first >= BASE_S and second >= 2 * BASE_S  # doubling from the base


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    server = TimedServer((429, {"Retry-After": "1"}))
    assert fetch_package_file(server, tmp_path, Client(base=0.01)).read_bytes() == BODY
    assert len(server.times) == 2 and server.gaps()[0] >= 1.0


@pytest.mark.parametrize("status", [404, 403, 410])
def test_any_other_4xx_is_final(status: int, tmp_path: Path) -> None:
    """verify-remote asked again for a file the registry says is not there (five times)."""
    server = TimedServer((status, {}))
    with pytest.raises(PublishError, match=rf"weights.bin: HTTP {status} \(final: not retried\)"):
        fetch_package_file(server, tmp_path)
    assert len(server.times) == 1
    assert not (tmp_path / "pkg" / ".weights.bin.partial").exists()


def test_a_body_cut_short_is_fetched_again_after_the_backoff(tmp_path: Path) -> None:
    server = TimedServer("drop")
    assert fetch_package_file(server, tmp_path).read_bytes() == BODY
    assert len(server.times) == 2 and server.gaps()[0] >= BASE_S


def test_busy_until_the_attempts_run_out(tmp_path: Path) -> None:
    server = TimedServer(*[(503, {})] * 5)
    with pytest.raises(PublishError, match=r"HTTP 503 after every retry"):
        fetch_package_file(server, tmp_path, Client(attempts=3))
    assert len(server.times) == 3 and all(gap >= BASE_S for gap in server.gaps())


@pytest.fixture
def policy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTPACK_RETRY_BASE_S", str(BASE_S))
    monkeypatch.setenv("WEIGHTPACK_RETRY_MAX_S", "1")
    monkeypatch.setenv("WEIGHTPACK_RETRY_ATTEMPTS", "3")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)


def test_an_https_source_follows_the_same_policy(tmp_path: Path, policy_env: None) -> None:
    from packager.sources import fetch

    server = TimedServer((503, {}), (429, {}))
    with server:
        fetched = fetch(f"{server.url}/weights.bin", cache_dir=tmp_path)  # plain http: loopback only
    assert (fetched.path / "weights.bin").read_bytes() == BODY
    assert len(server.times) == 3 and server.gaps()[0] >= BASE_S and server.gaps()[1] >= 2 * BASE_S


def test_a_gs_source_follows_the_same_policy(
    tmp_path: Path, policy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage client's session retries by our policy, its own retry is off: three attempts in all
    (google-cloud-storage's own retry went on for two minutes, one second apart and more)."""
    pytest.importorskip("google.cloud.storage", reason="the gcs extra")
    from packager.sources import fetch
    from tests.servers.registry import GcsEmulator

    emulator = GcsEmulator().start()
    try:
        emulator.put("upstream/weights.bin", BODY)
        busy = TimedServer((503, {}), upstream=emulator.url)
        with busy:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", busy.url)
            fetched = fetch(f"gs://{emulator.bucket}/upstream/weights.bin", cache_dir=tmp_path / "a")
        assert (fetched.path / "weights.bin").read_bytes() == BODY
        assert busy.gaps()[0] >= BASE_S
        failing = TimedServer(*[(503, {})] * 10, upstream=emulator.url)
        with failing, pytest.raises(SourceError, match="download failed"):
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", failing.url)
            fetch(f"gs://{emulator.bucket}/upstream/weights.bin", cache_dir=tmp_path / "b")
        assert len(failing.gaps()) == 2  # three attempts of a request, then it gave up
        assert all(gap >= BASE_S for gap in failing.gaps())
    finally:
        emulator.stop()
