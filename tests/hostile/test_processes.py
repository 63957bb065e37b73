"""No process outlives its run (issue 25): ``--jobs`` workers die with the process that started them, the lock
names every process of the run, a temporary's owner counts as alive only while it really runs (not a zombie,
not a new process that reused its pid), and Ctrl-C twice still ends with 130."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from packager import atomic
from packager.outdir import OWNER_NAME, claim
from tests.hostile.helpers import ROOT
from tests.hostile.test_kill import temporaries
from tests.packs import pack_popen, pack_process

DEADLINE_S = 60  # generous: the test is about whether, never about how fast


def wait_until(condition, deadline_s: float = DEADLINE_S, step_s: float = 0.1) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def gone(handles: list[psutil.Process]) -> bool:
    """None of them runs any more (a zombie does not run): judged by psutil, not by the code under test."""

    def runs(handle: psutil.Process) -> bool:
        try:
            return handle.is_running() and handle.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    return not any(runs(h) for h in handles)


# ---------------------------------------------------------------- what "alive" means


def test_a_zombie_owner_is_dead_and_its_temporary_swept(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits at once; not reaped until wait()
    try:
        assert wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE)
        left = tmp_path / f".all-minilm-l6-hf.zip.{child.pid}-ab12.partial"
        left.write_bytes(b"half a zip")
        assert not atomic.alive(child.pid)
        assert atomic.sweep(tmp_path) == [left] and not left.exists()
    finally:
        child.wait()


def test_a_reused_pid_is_not_the_owner_come_back(tmp_path: Path) -> None:
    """A live process holds the pid, but it started later than the owner the lock stamp recorded."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = atomic.start_time(stranger.pid)
        assert started is not None and atomic.alive(stranger.pid, started)
        staging = tmp_path / f".staging-l6-hf.{stranger.pid}-x9.partial"
        staging.mkdir()
        assert atomic.sweep(tmp_path) == []  # nothing known about the pid: a live process keeps it
        assert atomic.sweep(tmp_path, owners={stranger.pid: started - 3600}) == [staging]
        assert not staging.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_the_lock_stamp_names_each_process_with_its_start_time(tmp_path: Path) -> None:
    from packager.outdir import record_processes

    out = tmp_path / "out"
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with claim(out):
            record_processes(out, [helper.pid])
            stamp = json.loads((out / OWNER_NAME).read_text())
            named = {p["pid"]: p["create_time"] for p in stamp["processes"]}
            assert named == {
                os.getpid(): atomic.start_time(os.getpid()),
                helper.pid: atomic.start_time(helper.pid),
            }
    finally:
        helper.kill()
        helper.wait()


def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    """``jobs.die_with_parent`` in a grandchild; its parent is SIGKILLed, nothing else is signalled."""
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import os, time\\n"
        "from packager.jobs import die_with_parent\\n"
        "die_with_parent(os.getppid())\\n"
        "time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(parent.stdout.readline())
    handles = processes(worker)
    try:
        assert wait_until(lambda: atomic.alive(worker) and psutil.Process(worker).ppid() == parent.pid)
        time.sleep(1)  # the worker has armed its signal
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: gone(handles)), "the worker outlived its parent"
    finally:
        kill_all(handles)
        parent.stdout.close()


def processes(*pids: int) -> list[psutil.Process]:
    """Handles on processes this test started (psutil checks a handle's start time before signalling it,
    so a pid reused meanwhile by someone else's process is never killed)."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def kill_all(handles: list[psutil.Process]) -> None:
    for handle in handles:
        with contextlib.suppress(psutil.Error):
            handle.kill()


# ---------------------------------------------------------------- a real pack, killed


def pack_argv(out: Path, cache: Path) -> list[str]:
    return ["minilm", "--backends", "onnx,torch-script", "--jobs", "2",
            "--no-latency", "--quiet", "--out", str(out), "--cache-dir", str(cache)]  # fmt: skip


def start_pack(out: Path, cache: Path, tmpdir: Path | None = None) -> subprocess.Popen:
    return pack_popen(
        *pack_argv(out, cache), tmpdir=tmpdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip


def stamped(out: Path) -> set[int]:
    """The pids the lock stamp names."""
    try:
        return {p["pid"] for p in json.loads((out / OWNER_NAME).read_text()).get("processes", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def workers_of(main_pid: int) -> list[psutil.Process]:
    """The worker processes of a running pack, once there are two."""
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(main_pid).children()
        return children if len(children) >= 2 else []
    return []


def start_and_find_workers(
    out: Path, cache: Path, tmpdir: Path | None = None
) -> tuple[subprocess.Popen, list[psutil.Process]]:
    child = start_pack(out, cache, tmpdir)
    assert wait_until(lambda: bool(workers_of(child.pid)) or child.poll() is not None, 300)
    workers = workers_of(child.pid)
    if not workers:
        child.kill()
        pytest.fail(f"pack ended ({child.poll()}) before starting its workers: {child.stderr.read()[-2000:]}")
    return child, workers


@pytest.mark.slow
def test_kill_9_of_pack_alone_takes_its_workers_and_the_rerun_leaves_no_temporary(tmp_path: Path) -> None:
    out, cache, tmpdir = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    child, handles = start_and_find_workers(out, cache, tmpdir)
    try:
        wait_until(lambda: {h.pid for h in handles} <= stamped(out), 5)  # written as they start
        named = stamped(out)
        os.kill(child.pid, signal.SIGKILL)  # the main process alone, as an OOM killer would
        child.wait()
        assert wait_until(lambda: gone(handles)), f"workers {handles} outlived the killed pack"
        assert {h.pid for h in handles} | {child.pid} <= named, "the lock did not name every process"
        assert not list(out.glob("*.zip")) or all(p.stat().st_size for p in out.glob("*.zip"))
        rerun = pack_process(*pack_argv(out, cache), tmpdir=tmpdir)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert temporaries(out, cache, tmpdir) == []
    finally:
        child.kill()
        kill_all(handles)
        child.stderr.close()


@pytest.mark.slow
def test_ctrl_c_twice_exits_130_without_a_traceback_or_a_worker_left(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    child, handles = start_and_find_workers(out, cache)
    try:
        os.killpg(child.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        time.sleep(0.2)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=DEADLINE_S)
        assert child.returncode == 130, (child.returncode, err[-3000:])
        assert "Traceback" not in err and "interrupted" in err, err[-3000:]
        assert wait_until(lambda: gone(handles)), f"workers {handles} outlived the interrupted pack"
    finally:
        child.kill()
        kill_all(handles)


@pytest.mark.parametrize(
    "stamp",
    [
        '{"pid": 1, "processes": 5}',
        '{"processes": [{"pid": "x"}, {"pid": 99999999999999999999, "create_time": 1}, 7, {"pid": -1}]}',
        "[1]",
        "not json",
        '{"processes": [{"pid": 1, "create_time": 1e308}]}',
    ],
)
def test_a_garbled_lock_stamp_is_only_a_hint(tmp_path: Path, stamp: str) -> None:
    """A killed run's stamp is read to wait for its processes; whatever it holds, the next run starts."""
    out = tmp_path / "out"
    out.mkdir()
    (out / OWNER_NAME).write_text(stamp)
    with claim(out):
        assert json.loads((out / OWNER_NAME).read_text())["pid"] == os.getpid()
