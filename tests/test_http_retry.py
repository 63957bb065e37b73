"""packager.publish.http against a scripted loopback server: which answers are retried, how long it waits
(``Retry-After`` in seconds or as a date, capped; otherwise doubling from the base), file bodies sent whole
again, and the secret kept out of every message. Sleeps are recorded, not waited."""

from __future__ import annotations

import email.utils
import logging
import sys
import time
from collections import deque
from pathlib import Path

import pytest
import requests

from packager.publish.http import HttpFailure, RetryPolicy, send
from packager.publish.secret import Secret
from tests.servers._base import LoopbackServer, QuietHandler

TOKEN = "s3cr3t-token-value"


class ScriptedServer(LoopbackServer):
    """Answers each request with the next scripted ``(status, headers, body)``, or drops the connection
    for ``"drop"``; keeps every request body it read."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes] | str) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.bodies: list[bytes] = []


class _Handler(QuietHandler):
    app: ScriptedServer

    def _answer(self) -> None:
        self.app.record(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        length = int(self.headers.get("Content-Length") or 0)
        answer = self.app.answers.popleft() if self.app.answers else (200, {}, b"{}")
        if answer == "drop":
            self.rfile.read(min(length, 10))
            self.close_connection = True
            self.connection.close()
            return
        self.app.bodies.append(self.rfile.read(length))
        status, headers, body = answer
        body = body.replace(b"$AUTH", self.headers.get("Authorization", "").encode())
        self.send_body(status, body, {"Content-Type": "application/json", **headers}, False)

    do_GET = do_POST = do_PUT = _answer


ScriptedServer.handler_class = _Handler


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    return slept


def call(server: ScriptedServer, method: str = "POST", **kwargs) -> tuple[requests.Response, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("policy", RetryPolicy(attempts=5, base_delay_s=0.5, max_delay_s=8.0, timeout_s=10))
    with server:
        response = send(
            requests.Session(),
            method,
            f"{server.url}/models",
            what="register model",
            secret=Secret(TOKEN),
            json_body={"a": 1},
            on_retry=lines.append,
            **kwargs,
        )
    return response, lines


def test_retry_after_seconds_is_honoured(sleeps: list[float]) -> None:
    server = ScriptedServer((503, {"Retry-After": "3"}, b""), (200, {}, b"{}"))
    response, lines = call(server)
    assert response.status_code == 200 and server.count("POST") == 2
    assert sleeps == [3]
    assert lines == ["register model: HTTP 503; retry 1/4 in 3s"]


def test_retry_after_is_capped_and_a_date_works(sleeps: list[float]) -> None:
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    server = ScriptedServer((429, {"Retry-After": "3600"}, b""), (503, {"Retry-After": future}, b""), "drop")
    call(server, policy=RetryPolicy(attempts=5, base_delay_s=0.25, max_delay_s=2.0, timeout_s=10))
    assert sleeps == [2, 2, 1.0]  # two capped Retry-After waits, then the backoff's third step


def test_backoff_doubles_and_unparseable_retry_after_falls_back(sleeps: list[float]) -> None:
    server = ScriptedServer((500, {"Retry-After": "soon"}, b""), (502, {}, b""), (408, {}, b""))
    response, lines = call(server)
    assert response.status_code == 200 and sleeps == [0.5, 1.0, 2.0]
    assert [line.split("; ")[1] for line in lines] == [
        "retry 1/4 in 0.5s",
        "retry 2/4 in 1s",
        "retry 3/4 in 2s",
    ]


def test_a_4xx_is_final_and_the_secret_is_redacted(sleeps: list[float]) -> None:
    server = ScriptedServer((400, {}, b'{"error": "bad token $AUTH"}'))
    with pytest.raises(HttpFailure, match=r"HTTP 400.*\*\*\*.*not retried") as failure:
        call(server)
    assert TOKEN not in str(failure.value) and server.count() == 1 and sleeps == []


def test_exhausted_retries_name_the_last_answer_without_the_secret(sleeps: list[float]) -> None:
    server = ScriptedServer(*[(503, {}, b"down; you sent $AUTH")] * 5)
    with pytest.raises(HttpFailure, match=r"failed after 5 attempts; last: HTTP 503") as failure:
        call(server)
    assert TOKEN not in str(failure.value) and server.count() == 5 and len(sleeps) == 4


def test_dropped_upload_is_sent_whole_again(sleeps: list[float], tmp_path: Path) -> None:
    payload = tmp_path / "weights.bin"
    payload.write_bytes(bytes(range(256)) * 400)
    server = ScriptedServer("drop", (200, {}, b""))
    lines: list[str] = []
    with server:
        send(
            requests.Session(),
            "PUT",
            f"{server.url}/upload?sig=abc",
            what="upload weights.bin",
            policy=RetryPolicy(timeout_s=10),
            data_factory=lambda: open(payload, "rb"),  # noqa: SIM115 -- closed by send()
            on_retry=lines.append,
        )
    assert server.bodies == [payload.read_bytes()]
    assert len(lines) == 1 and lines[0].startswith("upload weights.bin: ") and "sig=abc" not in lines[0]


def test_connection_refused_fails_after_every_attempt(sleeps: list[float]) -> None:
    server = ScriptedServer()
    with server:
        url = f"{server.url}/models"
    with pytest.raises(HttpFailure, match=r"failed after 3 attempts; last: \w+"):
        send(requests.Session(), "GET", url, what="resolve", policy=RetryPolicy(attempts=3, timeout_s=5))
    assert sleeps == [0.5, 1.0]


SIGNATURE = "SECRETSIG0123456789abcdef"
PASSWORD = "p@ss@w0rd-Secret"


def test_urllib3_logs_never_show_a_signed_url_or_a_password(
    sleeps: list[float], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """An app (or pytest) that configures logging sees urllib3's records: the retry warning after a dropped
    connection and the DEBUG line of every request name the URL, whose query is the signature."""
    caplog.set_level(logging.DEBUG)
    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"w" * 4096)
    server = ScriptedServer("drop", (200, {}, b""))
    with server:
        url = server.url.replace("http://", f"http://svc:{PASSWORD}@")
        send(
            requests.Session(),
            "PUT",
            f"{url}/upload/tok?X-Goog-Signature={SIGNATURE}&X-Goog-Credential=svc%40proj",
            what="upload weights.bin",
            policy=RetryPolicy(timeout_s=10),
            data_factory=lambda: open(payload, "rb"),  # noqa: SIM115 -- closed by send()
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any(r.name == "urllib3.connectionpool" and "Retrying" in r.getMessage() for r in caplog.records)
    assert any("/upload/tok?***" in m for m in messages), messages  # the URL is still there, its query not
    everything = "\n".join(messages) + caplog.text
    for secret in (SIGNATURE, PASSWORD, "svc%40proj", "ss@w0rd"):
        assert secret not in everything


def test_the_log_filter_redacts_full_urls_arguments_and_tracebacks() -> None:
    from packager.retry import RedactingFilter

    record = logging.LogRecord(
        "urllib3.connectionpool",
        logging.DEBUG,
        __file__,
        1,
        "Redirecting %s -> %s",
        (f"http://u:{PASSWORD}@h/x?sig={SIGNATURE}", "/y?token=abc"),
        None,
    )
    assert RedactingFilter().filter(record) is True  # redacted, never dropped
    assert record.getMessage() == "Redirecting http://***@h/x?*** -> /y?***"
    try:
        raise ValueError(f"Max retries exceeded with url: /upload?sig={SIGNATURE}")
    except ValueError:
        info = sys.exc_info()
    failed = logging.LogRecord("urllib3.connection", logging.WARNING, __file__, 1, "x", (), info)
    RedactingFilter().filter(failed)
    assert SIGNATURE not in logging.Formatter().format(failed) and "/upload?***" in failed.exc_text


def test_a_record_that_cannot_be_formatted_is_redacted_too() -> None:
    from packager.retry import RedactingFilter

    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1, "%s %s", ("/x?s=1",), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "%s %s ('/x?***',)"
