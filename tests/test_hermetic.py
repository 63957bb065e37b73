"""The suite is hermetic against the caller's environment (issue 21): what the shell that starts pytest
sets (offline mode, tokens, another endpoint or cache, retry settings, colours, terminal width) reaches
neither the tests in this process nor the ``pack`` children they start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.hermetic import ROOT, SUITE_ENV, child_env, is_product_setting, without_product_settings

CALLER = {
    "HF_HUB_OFFLINE": "1",
    "HF_TOKEN": "hf_callersOwnToken",
    "HF_ENDPOINT": "http://127.0.0.1:9",
    "HF_HOME": "/nonexistent/hf-home",
    "TRANSFORMERS_OFFLINE": "1",
    "WEIGHTPACK_CACHE": "/nonexistent/cache",
    "WEIGHTPACK_RETRY_ATTEMPTS": "0",
    "WEIGHTPACK_REGISTRY_URL_STAGING": "http://127.0.0.1:9",
    "MODELS_SERVICE_INTERNAL_SECRET": "callers-secret",
    "ROBOFLOW_API_KEY": "callers-key",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    "NO_COLOR": "1",
    "COLUMNS": "20",
    "MINILM_PACKAGE_URL": "http://127.0.0.1:9/x.zip",
}


def test_product_settings_are_told_from_the_os_and_the_suites_switches() -> None:
    assert all(is_product_setting(name) for name in CALLER)
    for name in (
        "PATH",
        "HOME",
        "LANG",
        "PIP_FIND_LINKS",
        "REQUESTS_CA_BUNDLE",
        "WEIGHTPACK_REQUIRE_CONSUMER",
    ):
        assert not is_product_setting(name), name
    assert without_product_settings({**CALLER, "PATH": "/bin"}) == {"PATH": "/bin"}


def test_a_child_gets_the_suites_settings_and_what_the_test_passes_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in CALLER.items():
        monkeypatch.setenv(name, value)  # as a fixture or an earlier test might have left them
    env = child_env({"WEIGHTPACK_HTTP_TIMEOUT_S": "5"}, paths=("extra",))
    leaked = {k: v for k, v in env.items() if CALLER.get(k) == v}
    assert leaked == {"HF_HUB_OFFLINE": "1"}, leaked  # offline: the suite's own choice for pack children
    assert env["WEIGHTPACK_CACHE"] == SUITE_ENV["WEIGHTPACK_CACHE"] and env["HF_HOME"] == SUITE_ENV["HF_HOME"]
    assert env["WEIGHTPACK_HTTP_TIMEOUT_S"] == "5" and env["PATH"] == os.environ["PATH"]
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(ROOT), "extra"]
    assert "HF_HUB_OFFLINE" not in child_env(offline=False)


def test_this_session_has_its_own_cache_and_hf_home() -> None:
    for name in ("WEIGHTPACK_CACHE", "HF_HOME"):
        assert os.environ[name] == SUITE_ENV[name] and os.path.isdir(os.environ[name]), name


@pytest.mark.slow
def test_the_hub_tests_pass_under_a_hostile_shell() -> None:
    """The reproduction: with HF_HUB_OFFLINE=1 (and more) in the shell, the loopback hub tests of
    tests/test_sources.py failed (huggingface_hub reads it at import, before any fixture)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_sources.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "hf_ or hash_cache",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            **CALLER,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]
