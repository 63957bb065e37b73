"""Credentials are never printed or written: URL user-info, secrets echoed back, the report's argv.
Redaction replaces whole values only, never fragments of words."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from packager import cli
from packager.publish.cli import after_pack
from packager.publish.secret import Secret
from packager.redact import redact_argv, redact_text, redact_url
from packager.ui import UI
from tests.hostile.helpers import pack

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
    return Path(shutil.copytree(minilm_pack_onnx, tmp_path / "out"))


def test_registry_url_credentials_never_reach_plan_state_or_resume_hint(out: Path, registry_server) -> None:
    url = registry_server.url.replace("http://", f"http://svc:{PASSWORD}@")
    flags = ["--register", "--execute", "--registry-url", url]
    args = cli.build_parser().parse_args(
        ["minilm", "--variants", "l6", "--backends", "onnx", "--out", str(out), *flags]
    )
    report = json.loads((out / "report.json").read_text())
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli._guard(lambda: after_pack(args, report, out, UI()) or 0, json_errors=False)
    text = buffer.getvalue()
    assert code != 0 and "To resume, re-run:" in text  # the user-info's basic auth is refused (401)
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
