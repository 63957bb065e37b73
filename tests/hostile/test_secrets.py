"""Credentials are never printed or written: URL user-info, secrets echoed back, the report's argv.
Redaction replaces whole values only, never fragments of words."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from packager import cli
from packager.publish.secret import Secret
from packager.redact import redact_argv, redact_text, redact_url
from tests.hostile.helpers import pack
from tests.packs import copy_of, publish

PASSWORD = "hunter2-Pa55word"


def test_url_user_info_is_masked_whole() -> None:
    assert redact_url(f"http://user:{PASSWORD}@host:8080/x?y=1") == "http://***@host:8080/x?y=1"
    assert redact_url("https://host/path@v1") == "https://host/path@v1"  # an '@' in the path is no user-info
    assert redact_argv(["pack", "--registry-url", f"https://u:{PASSWORD}@h"]) == [
        "pack",
        "--registry-url",
        "https://***@h",
    ]
    text = f"GET http://u:{PASSWORD}@h/models failed: 401"
    assert PASSWORD not in redact_text(text) and "failed: 401" in redact_text(text)


def test_a_short_secret_does_not_star_out_messages() -> None:
    secret = Secret("e")
    message = "register model all-minilm/l6: HTTP 503 Service Unavailable; retry 1/3 in 0.5s"
    assert secret.redact(message) == message  # not '***' for every 'e', which would also give it away
    echoed = '{"received": {"authorization": "Bearer e"}}'
    assert "Bearer e" not in secret.redact(echoed) and "***" in secret.redact(echoed)


def test_a_secret_is_replaced_as_a_whole_token_only() -> None:
    secret = Secret("tok-0123456789")
    assert secret.redact("key tok-0123456789 sent") == "key *** sent"
    assert secret.redact("tok-0123456789.") == "***."
    assert secret.redact("no secret here: token count 3") == "no secret here: token count 3"


@pytest.fixture
def out(minilm_pack_onnx: Path, tmp_path: Path) -> Path:
    return copy_of(minilm_pack_onnx, tmp_path)


def publish_with(out: Path, url: str) -> tuple[int, str]:
    return publish(out, "--register", "--execute", "--registry-url", url)


def test_registry_url_credentials_never_reach_plan_state_or_resume_hint(
    out: Path, registry_server, monkeypatch
) -> None:
    monkeypatch.delenv("MODELS_SERVICE_INTERNAL_SECRET")  # the URL's is the only secret: a wrong one
    url = registry_server.url.replace("http://", f"http://svc:{PASSWORD}@")
    code, text = publish_with(out, url)
    assert code != 0 and "To resume, re-run:" in text and "401" in text  # Bearer PASSWORD: not the secret
    assert "http://***@127.0.0.1" in text
    written = "".join(p.read_text() for p in out.glob("*.json"))
    assert "publish-state" in " ".join(p.name for p in out.glob("*.json"))
    assert PASSWORD not in text and PASSWORD not in written


@pytest.mark.slow
def test_report_argv_is_redacted_and_duplicates_are_packaged_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = pack(
        "minilm",
        "--variants",
        "l6,l6,l6",
        "--backends",
        "onnx,onnx",
        "--no-latency",
        "--quiet",
        "--out",
        str(out),
        "--registry-url",
        f"http://svc:{PASSWORD}@127.0.0.1:9",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert [(p["variant"], p["backend"]) for p in report["packages"]] == [("l6", "onnx")]
    assert len({(p["variant"], p["backend"], p["device"], p["output"]) for p in report["parity"]}) == len(
        report["parity"]
    )
    assert "http://***@127.0.0.1:9" in report["meta"]["argv"]
    everything = (
        proc.stdout + proc.stderr + "".join(p.read_text() for p in out.glob("report.*") if p.suffix != ".png")
    )
    assert PASSWORD not in everything


def test_an_at_sign_in_the_password_is_masked_whole() -> None:
    """requests and urllib3 take the user-info up to the last '@' of the authority: so does redaction."""
    assert redact_url("http://user:p@ss@host/x@v1?q=1") == "http://***@host/x@v1?q=1"
    assert redact_url("https://u:a@b@c@h:8080") == "https://***@h:8080"
    text = "POST http://svc:p@ss@127.0.0.1:9/models failed; see https://host/path@v1"
    assert redact_text(text) == "POST http://***@127.0.0.1:9/models failed; see https://host/path@v1"
    assert redact_argv(["--registry-url", "http://u:p@ss@h"]) == ["--registry-url", "http://***@h"]


@pytest.mark.parametrize("userinfo", [":{secret}", "svc:{secret}", "{secret}"])
def test_a_secret_in_the_registry_url_is_sent_as_the_bearer_token_never_as_basic_auth(
    out: Path, registry_server, monkeypatch, userinfo: str
) -> None:
    """requests turned the URL's user-info into Basic auth, replacing the Bearer header: every call 401."""
    secret = registry_server.secret
    monkeypatch.delenv("MODELS_SERVICE_INTERNAL_SECRET")
    url = registry_server.url.replace("http://", f"http://{userinfo.format(secret=secret)}@")
    code, text = publish_with(out, url)
    assert code == 0, text
    assert len(registry_server.sealed("all-minilm/l6")) == 1
    sent = [r for r in registry_server.requests if r.method == "POST"]
    assert sent and all(r.headers.get("authorization") == f"Bearer {secret}" for r in sent)
    state = (out / "publish-state.staging.json").read_text()
    assert secret not in state and secret not in text and "#account-" in state


def test_a_url_secret_and_another_environment_secret_are_refused_before_anything_is_sent(
    out: Path, registry_server
) -> None:
    url = registry_server.url.replace("http://", f"http://:{PASSWORD}@")
    code, text = publish_with(out, url)
    assert code == 2 and "carries a secret and MODELS_SERVICE_INTERNAL_SECRET holds another" in text
    assert registry_server.requests == [] and PASSWORD not in text


def test_two_urls_differing_only_in_credentials_have_their_own_publish_state() -> None:
    from packager.publish.registry import RegistryClient
    from packager.publish.secret import account_key

    clients = [
        RegistryClient("http://host:1", Secret(s), account=account_key("http://host:1", Secret(s)))
        for s in ("first-secret-1", "second-secret-2")
    ]
    assert clients[0].display_url == clients[1].display_url == "http://host:1"
    assert clients[0].state_key != clients[1].state_key
    assert all("secret" not in c.state_key for c in clients)


@pytest.mark.slow
def test_json_prints_exactly_one_document_when_publishing_fails(out: Path, registry_server) -> None:
    registry_server.fail("package", status=403, times=100)
    proc = pack(
        "minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), "--json",
        "--register", "--execute", "--registry-url", registry_server.url,
        env={"MODELS_SERVICE_INTERNAL_SECRET": registry_server.secret, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    doc = json.loads(proc.stdout)  # one document, or 'Extra data'
    assert proc.returncode == 1 and doc["exit_code"] == 1 and not doc["passed"], proc.stderr[-2000:]
    assert "403" in doc["error"] and doc["packages"]  # the run's summary and the error, together


@pytest.mark.parametrize(
    "argv",
    [
        ["minilm", "--json", "--bogus"],
        ["minilm", "--json", "--threads", "0"],
        ["nonexistent-family", "--json"],
    ],
)
def test_json_prints_one_document_for_a_refused_command_line(argv: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code == 2
    assert json.loads(out.getvalue())["exit_code"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:99999", "not a URL (Port out of range"),
        ("http://[::1", "not a URL (Invalid IPv6 URL"),
        ("ftp://h", "not an http(s) URL with a host"),
        ("http://registry.example.com", "plain http:// would send the service secret in clear"),
        ("https://h/x?token=1", "holds a query"),
    ],
)
def test_a_registry_url_that_cannot_work_is_refused_before_packing(
    url: str, problem: str, tmp_path: Path
) -> None:
    """They failed only after the whole pack: exit 3 after 34 s of retries, or 'unexpected' exit 1."""
    from tests.hostile.helpers import clean_error

    proc = pack("minilm", "--backends", "onnx", "--out", str(tmp_path / "out"), "--register", "--execute",
                "--registry-url", url, timeout=90)  # fmt: skip
    clean_error(proc, 2, problem, "accepted: https://HOST")
    assert not (tmp_path / "out").exists()


def test_credentials_in_a_source_url_never_reach_provenance_or_messages(tmp_path: Path, file_server) -> None:
    """provenance.uri (report.json, every manifest) recorded ``https://user:pass@host/file?signature``."""
    from packager.errors import SourceError
    from packager.sources import fetch, parse_uri

    url = (
        file_server.add("w.bin", b"abc").replace("http://", f"http://user:{PASSWORD}@")
        + "?X-Goog-Signature=s1"
    )
    provenance = json.dumps(fetch(url, cache_dir=tmp_path).provenance)
    assert PASSWORD not in provenance and "s1" not in provenance and "http://***@127.0.0.1" in provenance
    with pytest.raises(SourceError, match=r"invalid source 'http://\*\*\*@example\.com/x'") as caught:
        parse_uri(f"http://u:{PASSWORD}@example.com/x")
    assert PASSWORD not in str(caught.value)
