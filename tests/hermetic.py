"""The suite's environment is the suite's, whatever the shell that started it (a plugin: tests/conftest.py).

At configure time, before any test module imports huggingface_hub (which reads ``HF_HUB_OFFLINE``,
``HF_HOME`` and ``HF_ENDPOINT`` once, at import), every variable that weightpack or the libraries it drives
read is removed from this process's environment (``HF_HUB_OFFLINE=1`` in the shell used to fail nine tests
of tests/test_sources.py against the loopback hub), and the suite sets what it relies on: one download cache
(``WEIGHTPACK_CACHE``) and one empty ``HF_HOME`` (no stored token) for the whole session, in a folder of
the session's own. A fixture that needs more sets it with ``monkeypatch``; a child process gets
:func:`child_env`, never the caller's settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What weightpack, huggingface_hub, transformers, the consumer (inference-models), google-cloud-storage,
# Ray, onnxruntime and the terminal read from the environment: none of it may come from the caller.
PRODUCT_PREFIXES = (
    "WEIGHTPACK_",
    "HF_",
    "HUGGING_FACE_",
    "TRANSFORMERS_",
    "SENTENCE_TRANSFORMERS_",
    "ROBOFLOW_",
    "INFERENCE_",
    "ONNXRUNTIME_",
    "ORT_",
    "STORAGE_EMULATOR_",
    "GOOGLE_",
    "RAY_",
    "GITHUB_",
    "_ARGCOMPLETE",
    "COMP_",
)
PRODUCT_NAMES = frozenset(
    {
        "MODELS_SERVICE_INTERNAL_SECRET",
        "MODEL_CACHE_DIR",
        "API_KEY",
        "NO_COLOR",
        "FORCE_COLOR",
        "CLICOLOR_FORCE",
        "COLUMNS",
        "LINES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PYTHONWARNINGS",
    }
)
PRODUCT_SUFFIXES = ("_PACKAGE_URL", "_PACKAGE_MD5", "_MODEL_CLASS")  # generated fixtures' overrides
# The suite's own switches (read by tests, never by weightpack): they pass through.
SUITE_SWITCHES = frozenset(
    {
        "WEIGHTPACK_REQUIRE_CONSUMER",
        "WEIGHTPACK_SKIP_CONSUMER",
        "WEIGHTPACK_VENV",
        "WEIGHTPACK_CLEAN_VENV",
        "WEIGHTPACK_MINILM_DIR",
        "WEIGHTPACK_KILLS",
    }
)

SUITE_ENV: dict[str, str] = {}
"""What the suite sets for the session (filled by :func:`pytest_configure`): ``WEIGHTPACK_CACHE`` and
``HF_HOME`` in the session's folder."""
CHILD_TMP: list[Path] = []
"""The ``TMPDIR`` of child processes (an empty folder of the session's), once configured."""


def is_product_setting(name: str) -> bool:
    """Whether ``name`` is read by weightpack or a library it drives (and so must not come from the
    caller); the suite's own switches are not."""
    if name in SUITE_SWITCHES:
        return False
    return name.startswith(PRODUCT_PREFIXES) or name in PRODUCT_NAMES or name.endswith(PRODUCT_SUFFIXES)


# What pytest and pytest-xdist set for the test process itself, never for a child: pytest-benchmark in a
# child pytest that sees PYTEST_XDIST_WORKER disables itself and writes no --benchmark-json.
RUNNER_PREFIXES = ("PYTEST_XDIST_", "PYTEST_CURRENT_TEST")


def without_product_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every product setting: what the OS and the tools around need (PATH, HOME, locale,
    CA bundles, pip's options) stays."""
    return {k: v for k, v in environ.items() if not is_product_setting(k)}


def child_env(
    env: Mapping[str, str] | None = None,
    *,
    paths: tuple[str | Path, ...] = (),
    tmpdir: Path | None = None,
    offline: bool = True,
) -> dict[str, str]:
    """The environment of a child process (``pack``, a script, the consumer): this process's environment
    less every product setting (a fixture's ``monkeypatch.setenv`` included: pass what the child needs in
    ``env``), plus the session's settings, ``HF_HUB_OFFLINE=1`` unless ``offline`` is false, ``TMPDIR`` a
    folder of the session's (or ``tmpdir``), and ``PYTHONPATH`` with the checkout and ``paths`` first."""
    child = without_product_settings(os.environ)
    for name in [k for k in child if k.startswith(RUNNER_PREFIXES)]:
        del child[name]  # a child pytest run under a -n worker would think itself one (no benchmarks)
    child.update(SUITE_ENV)
    if offline:
        child["HF_HUB_OFFLINE"] = "1"
    if tmpdir is not None:
        child["TMPDIR"] = str(tmpdir)
    elif CHILD_TMP:
        child["TMPDIR"] = str(CHILD_TMP[0])
    child["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *(str(p) for p in paths), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    child.update(env or {})
    return child


@pytest.hookimpl(trylast=True)  # after pytest's own configure, which makes the temporary-path factory
def pytest_configure(config: pytest.Config) -> None:
    factory = config._tmp_path_factory  # type: ignore[attr-defined]
    session = factory.mktemp("suite-env", numbered=True)
    # Under pytest-xdist the download cache and HF_HOME are the run's, above each worker's folder: a pack
    # one worker built for the run (tests.packs.built_once) is re-run by another with the cache whose key
    # sealed its records. Children's TMPDIR stays the worker's own.
    shared = factory.getbasetemp().parent / "suite-env" if os.environ.get("PYTEST_XDIST_WORKER") else session
    for name in ("cache", "hf-home"):
        (shared / name).mkdir(parents=True, exist_ok=True)
    (session / "tmp").mkdir()
    SUITE_ENV.update(WEIGHTPACK_CACHE=str(shared / "cache"), HF_HOME=str(shared / "hf-home"))
    CHILD_TMP[:] = [session / "tmp"]
    patch = pytest.MonkeyPatch()
    config.add_cleanup(patch.undo)
    for name in [n for n in os.environ if is_product_setting(n)]:
        patch.delenv(name)
    for name, value in SUITE_ENV.items():
        patch.setenv(name, value)
