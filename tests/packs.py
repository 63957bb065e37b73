"""Real ``pack`` runs for tests, in one place (registered as a plugin in tests/conftest.py):

* :func:`pack_process` / :func:`pack_popen`: ``pack ARGS`` in a child process as a user runs it, with the
  environment of :func:`tests.hermetic.child_env` (offline, the session's download cache, nothing of the
  caller's; what the test needs passed in ``env``);
* the session-scoped packs, one per family and backend set, shared by every test that only reads them
  (a test that changes one works on a copy: :func:`copy_of`).

A test that uses a session pack runs real weights end to end, so it is marked ``slow`` automatically
(``scripts/test.sh --fast`` skips it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from tests.hermetic import ROOT, child_env

SESSION_PACKS = ("minilm_pack_onnx", "minilm_pack_all", "onet_pack_onnx", "vad_pack_onnx")
"""Fixtures that run a real pack: the tests using them are marked ``slow``."""

RUNS = {"child": 0, "in-process": 0}
"""How many ``pack`` runs this session started through this module (the terminal summary says)."""

__all__ = [
    "ROOT",
    "built_once",
    "child_env",
    "copy_of",
    "pack_command",
    "pack_in_process",
    "pack_popen",
    "pack_process",
    "publish",
    "run_pack",
]


def pack_command(
    *args: str, python: str | Path = sys.executable, python_args: tuple[str, ...] = (), script: bool = False
) -> list[str]:
    """The command line of ``pack ARGS``: ``python -m packager.cli`` of the interpreter ``python`` (the
    consumer's, for one), or its console script ``pack`` beside it when ``script`` (whose sys.path holds
    neither the working directory nor the recipe's folder, as a user's does)."""
    if script:
        return [str(Path(python).with_name("pack")), *args]
    return [str(python), *python_args, "-m", "packager.cli", *args]


def pack_popen(
    *args: str,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    paths: tuple[str | Path, ...] = (),
    tmpdir: Path | None = None,
    offline: bool = True,
    python: str | Path = sys.executable,
    script: bool = False,
    **popen: Any,
) -> subprocess.Popen[str]:
    """``pack ARGS`` started in a child process (text mode; ``popen`` goes to :class:`subprocess.Popen`)."""
    RUNS["child"] += 1
    return subprocess.Popen(
        pack_command(*args, python=python, script=script),
        cwd=cwd,
        env=child_env(env, paths=paths, tmpdir=tmpdir, offline=offline),
        text=True,
        **popen,
    )


def pack_process(
    *args: str,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    paths: tuple[str | Path, ...] = (),
    tmpdir: Path | None = None,
    offline: bool = True,
    timeout: float = 600,
    python: str | Path = sys.executable,
    python_args: tuple[str, ...] = (),
    script: bool = False,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pack ARGS`` in a child process, to its end, as a user runs it from a shell: offline (unless
    ``offline`` is false), the session's download cache, ``env`` on top of nothing of the caller's
    (:func:`tests.hermetic.child_env`);
    ``python_args``: interpreter options (``-X importtime``); ``preexec``: run in the child before pack
    (resource limits). A hung run fails the test at ``timeout`` instead of holding the suite."""
    RUNS["child"] += 1
    return subprocess.run(
        pack_command(*args, python=python, python_args=python_args, script=script),
        cwd=cwd,
        env=child_env(env, paths=paths, tmpdir=tmpdir, offline=offline),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


def pack_in_process(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``pack ARGS`` through :func:`packager.cli.main` in this process, its output captured: what a run
    decides and reports, without a child's start-up (python, torch and onnxruntime imported again: seconds
    of a loaded machine's CPU per run). What only a process shows (the console script's import path,
    thread settings, a traceback reaching the terminal) is tested with :func:`pack_process`. Undone
    afterwards: the working directory, the environment (``env`` on top of this process's, offline as a
    child is), ``sys.argv``, ``sys.path`` and the modules the run imported from outside the checkout and
    the installed libraries (a recipe's own modules in a test's folder). A pack (not a verb) builds with
    ``--jobs 1`` unless told otherwise: a forked worker would copy this process, onnxruntime sessions of
    earlier tests included, which a fork must never destroy (backends.loaded.keep_inherited)."""
    from packager.cli import main
    from packager.commands import find

    RUNS["in-process"] += 1
    if args and find(args[0]) is None and "--jobs" not in args:
        args = (*args, "--jobs", "1")
    stdout, stderr = io.StringIO(), io.StringIO()
    environ, path, modules = dict(os.environ), list(sys.path), set(sys.modules)
    keep = tuple(str(p) for p in {ROOT, Path(sys.prefix), Path(sys.base_prefix)})
    try:
        with pytest.MonkeyPatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            patch.setattr(sys, "argv", ["pack", *args])
            # a module a test edits between two runs is read again, never from a cache stamped the same second
            patch.setattr(sys, "dont_write_bytecode", True)
            os.environ.update({"HF_HUB_OFFLINE": "1", **(env or {})})
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = main(list(args))
                except SystemExit as exc:  # argparse's usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            where = getattr(sys.modules[name], "__file__", None) or ""
            if where and not where.startswith(keep):
                del sys.modules[name]
    return subprocess.CompletedProcess(["pack", *args], code, stdout.getvalue(), stderr.getvalue())


MINILM_ONNX = ("minilm", "--variants", "l6", "--backends", "onnx")
"""The command line of the session's ``minilm_pack_onnx``, as far as publishing reads it."""


def publish(out: Path, *flags: str, family: tuple[str, ...] = MINILM_ONNX) -> tuple[int, str]:
    """The publish step of ``pack FAMILY --out OUT FLAGS`` (``after_pack`` of the publish extension, as the
    CLI runs it after a passed pack) on OUT's report, in this process; (exit code, its output)."""
    from packager import cli
    from packager.publish.cli import after_pack
    from packager.ui import UI

    args = cli.build_parser().parse_args([*family, "--out", str(out), *flags])
    report = json.loads((out / "report.json").read_text())
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli._guard(lambda: after_pack(args, report, out, UI()) or 0, json_errors=False)
    return code, buffer.getvalue()


def run_pack(out: Path, *args: str) -> dict:
    """``pack minilm --variants l6 --out OUT --quiet ARGS``, which must pass; returns its report.json."""
    proc = pack_process("minilm", "--variants", "l6", "--out", str(out), "--quiet", *args)
    assert proc.returncode == 0, f"pack failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads((out / "report.json").read_text())


def copy_of(out: Path, tmp_path: Path, name: str = "out") -> Path:
    """A private copy of a session pack's output folder, for a test that changes it."""
    return Path(shutil.copytree(out, tmp_path / name, symlinks=True))  # as `cp -r` copies its .upstream links


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build(folder)`` fills, built once per test run and then only read: by this process, or,
    under pytest-xdist, by the first worker that asks while the others wait on a file lock and then read
    the same folder (each worker building its own MiniLM pack cost a minute of CPU the other worker
    needed). A worker whose build failed leaves no mark, so the next one that asks builds again."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{name}"  # the run's, above each worker's
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def minilm_pack_all(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """``pack minilm --variants l6 --jobs 2 --json``: every backend the recipe enables, latency measured;
    (the output folder, its report.json, the ``--json`` summary printed). Shared by the session: copy it
    before changing anything in it."""

    def build(folder: Path) -> None:
        out = folder / "out"
        proc = pack_process("minilm", "--variants", "l6", "--jobs", "2", "--out", str(out), "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        (folder / "printed.json").write_text(proc.stdout)

    folder = built_once(tmp_path_factory, "minilm-pack-all", build)
    out = folder / "out"
    return out, json.loads((out / "report.json").read_text()), (folder / "printed.json").read_text()


@pytest.fixture(scope="session")
def minilm_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack minilm --variants l6 --backends onnx --no-latency`` output folder (report.json, zip,
    manifest, goldens; no latency rows: no user of it needs them). Shared by the whole session: copy it
    before changing anything in it."""

    def build(folder: Path) -> None:
        assert run_pack(folder / "out", "--backends", "onnx", "--no-latency")["passed"]

    return built_once(tmp_path_factory, "minilm-pack-onnx", build) / "out"


def _pack_once(tmp_path_factory: pytest.TempPathFactory, family: str, variant: str, backend: str) -> Path:
    def build(folder: Path) -> None:
        out = folder / "out"
        args = (family, "--variants", variant, "--backends", backend, "--out", str(out), "--quiet")
        proc = pack_process(*args)
        assert proc.returncode == 0, f"pack failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"

    return built_once(tmp_path_factory, f"{family}-{variant}-{backend}", build) / "out"


@pytest.fixture(scope="session")
def onet_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack mtcnn --variants onet --backends onnx`` output folder (a small CNN: seconds), shared
    by the whole session: copy it before changing anything in it."""
    return _pack_once(tmp_path_factory, "mtcnn", "onet", "onnx")


@pytest.fixture(scope="session")
def vad_pack_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passed ``pack silero_vad --variants onnx --backends onnx`` output folder (a recurrent model checked
    over a sequence of 8 calls), shared by the whole session: copy it before changing anything in it."""
    return _pack_once(tmp_path_factory, "silero_vad", "onnx", "onnx")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What the session's pack runs cost, at a glance: each child starts python, torch and onnxruntime."""
    if any(RUNS.values()):
        terminalreporter.write_line(
            f"tests.packs: {RUNS['child']} pack runs in a child process, {RUNS['in-process']} in this process"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a session pack ``slow``: it runs real weights end to end."""
    for item in items:
        if set(SESSION_PACKS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
