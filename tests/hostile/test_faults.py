"""Faults and concurrency: one run per output folder (held until the whole command ends, publishing
included), temporaries of killed runs swept, stale upload records not trusted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packager import atomic
from packager.outdir import OutputFolderError, claim
from tests.hostile.helpers import clean_error, pack
from tests.packs import copy_of, pack_popen, publish


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_a_second_run_on_one_out_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim(out):
        refused = pytest.raises(OutputFolderError, match=r"another pack run \(pid \d+, started .*--wait")
        with refused, claim(out):
            pass
        proc = pack("minilm", "--backends", "onnx", "--no-latency", "--out", str(out))
        clean_error(proc, 2, "another pack run", "--wait")
    with claim(out):  # released: the next run gets it
        pass


def test_wait_starts_when_the_holder_finishes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    order: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with claim(out):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    with claim(out, wait=True):
        order.append("second started")
    thread.join()
    assert order == ["first done", "second started"]


def test_temporaries_of_dead_runs_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = dead_pid()
    stale = [
        out / f".staging-l6-onnx.{dead}-abc123.partial",
        out / f".verify.{dead}-x1.partial",
        out / "goldens" / f".all-minilm-l6-reference.npz.{dead}-q9.partial",
        out / f".all-minilm-l6-onnx.zip.{dead}-zz.partial",
    ]
    for path in stale[:2]:
        (path / "package").mkdir(parents=True)
        (path / "package" / "weights.onnx").write_bytes(b"x" * 100)
    for path in stale[2:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 half a zip")
    # this process's own temporary is in use: never swept
    with atomic.temp_dir(out, "staging-l6-hf") as live, claim(out):
        assert [p for p in stale if p.exists()] == []
        assert live.is_dir()
    assert not live.exists()
    assert {p.name for p in out.iterdir()} == {"goldens", ".pack.lock"}


def test_file_store_sweeps_dead_partial_copies(tmp_path: Path) -> None:
    from packager.publish.storage import FileStore

    store = tmp_path / "store"
    store.mkdir()
    leftover = store / f".pkg.zip.{dead_pid()}-ab.partial"
    leftover.write_bytes(b"half")
    src = tmp_path / "pkg.zip"
    src.write_bytes(b"whole")
    FileStore(store).put(src, "pkg.zip", None)
    assert sorted(p.name for p in store.iterdir()) == ["pkg.zip"]


def test_verification_scratch_lives_under_out_not_tmp() -> None:
    """verify.py and verify_remote.py make their scratch folders with atomic.temp_dir (owned, swept)."""
    root = Path(__file__).resolve().parents[2] / "packager"
    for name in ("verify.py", "publish/verify_remote.py", "build.py", "publish/register.py"):
        text = (root / name).read_text()
        assert "tempfile.TemporaryDirectory(" not in text and "tempfile.mkdtemp(" not in text, name
        assert "atomic.temp_dir(" in text, name


# ---------------------------------------------------------------- stale upload records


@pytest.fixture
def out(minilm_pack_onnx: Path, tmp_path: Path) -> Path:
    return copy_of(minilm_pack_onnx, tmp_path)


def test_corrupted_upload_then_lost_confirm_is_reuploaded_by_the_next_run(out: Path, registry_server) -> None:
    """The store stored wrong bytes (and said so in its answer), then confirm failed with 503: the state
    records what the store holds, so the second run uploads that file again and seals."""
    registry_server.fail("upload", corrupt=True, handle="config.json")
    registry_server.fail("confirm", status=503, times=100)
    code, text = publish(out, "--register", "--execute")
    assert code == 3 and "503" in text and "stored with md5" in text  # 503 to the end: the network
    registry_server.rules.clear()
    puts = registry_server.count("PUT")
    code, text = publish(out, "--register", "--execute")
    assert code == 0, text
    assert registry_server.count("PUT") - puts == 1  # only the corrupted file
    assert len(registry_server.sealed("all-minilm/l6")) == 1


# ---------------------------------------------------------------- a pack in its publish step


@contextlib.contextmanager
def pack_held_in_upload(out: Path, registry_server) -> Iterator[tuple[subprocess.Popen, threading.Event]]:
    """A child ``pack ... --register --execute`` on ``out`` (its zips reused) whose first upload the
    registry holds until the event is set; yields once the upload has arrived. The child is killed and the
    upload let go at the end, whatever happened."""
    release = threading.Event()
    rule = registry_server.fail("upload", block=release)
    argv = ["minilm", "--variants", "l6", "--backends", "onnx", "--no-latency", "--quiet", "--out", str(out)]
    env = {**registry_server.env, "WEIGHTPACK_HTTP_TIMEOUT_S": "120"}
    child = pack_popen(
        *argv, "--register", "--execute", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        while not rule.arrived.wait(0.2):
            assert child.poll() is None, (
                f"pack ended ({child.returncode}) before uploading: {child.stdout.read()}"
            )
            assert time.monotonic() < deadline, "pack never reached its upload"
        yield child, release
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
        child.wait(60)
        child.stdout.close()


def test_the_out_folder_stays_held_while_the_pack_publishes(out: Path, registry_server) -> None:
    with pack_held_in_upload(out, registry_server) as (child, release):
        refused = pytest.raises(
            OutputFolderError, match=rf"another pack run \(pid {child.pid}, started .*--wait"
        )
        with refused, claim(out):
            pass
        release.set()
        output, _ = child.communicate(timeout=300)
        assert child.returncode == 0, output[-3000:]
        assert "sealed package" in output
    with claim(out):  # the command ended: released
        pass
    assert len(registry_server.sealed("all-minilm/l6")) == 1


def test_a_killed_publish_leaves_an_owned_temporary_the_next_run_sweeps(out: Path, registry_server) -> None:
    """The file being uploaded was extracted to an owned temporary beside the zips; after a SIGKILL the
    next run on the folder removes it."""
    with pack_held_in_upload(out, registry_server) as (child, _):
        [scratch] = [p for p in out.iterdir() if p.name.startswith(".publish")]
        assert atomic.owner_pid(scratch.name) == child.pid and scratch.name.endswith(".partial")
        assert [f.name for f in scratch.iterdir()] == ["file.bin"]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(60)
    assert scratch.is_dir()  # killed: nobody cleaned up
    with claim(out):  # what the next pack (or publish) does first
        assert not scratch.exists()
