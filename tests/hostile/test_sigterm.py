"""SIGTERM (what ``kill``, ``timeout``, systemd and container runtimes send) is handled like Ctrl-C (issue
25, left over): the same cleanup (workers stopped, temporaries removed, finished outputs intact, no
traceback) and the documented exit code 143 (128 + 15, the shell's convention), not death by the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from packager import atomic, cli, interrupts
from packager.outdir import OWNER_NAME
from tests.hostile.helpers import ROOT
from tests.hostile.test_kill import incomplete_outputs, temporaries
from tests.hostile.test_processes import gone, kill_all, start_and_find_workers, wait_until

TERMINATED = 143


def test_sigterm_is_an_interrupt_with_exit_143(capsys: pytest.CaptureFixture[str]) -> None:
    """In-process: the cleanup of the interrupted body runs, the guard prints one JSON document with 143,
    and the caller's SIGTERM handler is back afterwards."""
    cleaned = []

    def body() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # never reached: the handler raises at once
            return 0
        finally:
            cleaned.append(True)

    before = signal.getsignal(signal.SIGTERM)
    code = interrupts.run(lambda: cli._guard(body, json_errors=True), as_program=False)
    assert code == TERMINATED and cleaned == [True]
    doc = json.loads(capsys.readouterr().out)
    assert (doc["exit_code"], doc["error"]) == (TERMINATED, "terminated (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) == before


class SignalledWhileFinalized:
    """Its finalizer is where the signal's handler runs: Python cannot raise from there ("Exception ignored
    in ..."), as from logging's at-fork lock release while the pool forks a worker, which is where a real
    pack met its SIGTERM and went on to finish (exit 0)."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGTERM)
        for _ in range(10_000):  # a loop: the handler runs at its first backward jump, in here
            pass


def test_an_interrupt_python_swallowed_is_delivered_again(capsys: pytest.CaptureFixture[str]) -> None:
    cleaned = []

    def body() -> int:
        try:
            SignalledWhileFinalized()  # made and dropped at once
            for _ in range(600):  # ended by the interrupt delivered again
                time.sleep(0.05)
            return 0
        finally:
            cleaned.append(True)

    code = interrupts.run(lambda: cli._guard(body, json_errors=False), as_program=False)
    assert code == TERMINATED and cleaned == [True]
    assert "Exception ignored" not in capsys.readouterr().err


def test_the_documented_codes_include_143() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "**143** terminated (SIGTERM)" in readme
    for text in (cli.EXIT_CODES, (ROOT / "docs" / "cli.md").read_text()):
        assert "143 terminated (SIGTERM)" in " ".join(text.replace("**", "").split())
    assert interrupts.EXIT_TERMINATED == 128 + signal.SIGTERM


@pytest.mark.slow
def test_sigterm_to_pack_alone_stops_its_workers_and_exits_143(tmp_path: Path) -> None:
    """A real pack with two ``--jobs`` workers; SIGTERM to the main process only (as ``kill PID`` does).
    Its state is polled, never timed."""
    out, cache, tmpdir = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1"}
    child, handles = start_and_find_workers(out, cache, env)
    try:
        os.kill(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=120)
        assert child.returncode == TERMINATED, (child.returncode, err[-3000:])
        assert "Traceback" not in err and "terminated" in err, err[-3000:]
        assert wait_until(lambda: gone(handles)), f"workers {handles} outlived the terminated pack"
        assert temporaries(cache, tmpdir) == [], "a temporary outlived the terminated run"
        # a killed worker's staging folder may stay, owned: named for its dead worker, the next run sweeps it
        owners = {atomic.owner_pid(Path(t).name) for t in temporaries(out)}
        assert owners <= {h.pid for h in handles}, (owners, temporaries(out))
        assert not any(atomic.alive(pid) for pid in owners if pid is not None)
        atomic.sweep(out)
        assert temporaries(out) == []
        assert incomplete_outputs(out) == []
        assert not (out / OWNER_NAME).exists(), "the lock's stamp outlived the run (as after a kill -9)"
    finally:
        child.kill()
        kill_all(handles)
        child.stderr.close()


@pytest.mark.slow
def test_a_second_sigterm_during_cleanup_still_exits_143(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    child, handles = start_and_find_workers(out, cache, env)
    try:
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=120)
        assert child.returncode == TERMINATED, (child.returncode, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        assert wait_until(lambda: gone(handles)), f"workers {handles} outlived the terminated pack"
    finally:
        child.kill()
        kill_all(handles)
        child.stderr.close()


def test_a_forked_child_keeps_the_default_sigterm(tmp_path: Path) -> None:
    """A ``--jobs`` worker forked while pack's handler is installed must still die by SIGTERM, not raise
    an interrupt inside the task it runs (the parent does the cleanup)."""
    script = (
        "import os, signal, sys, time\n"
        "from packager import interrupts\n"
        "def body():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            time.sleep(60)\n"
        "        except BaseException:\n"
        "            os._exit(7)\n"
        "        os._exit(0)\n"
        "    time.sleep(0.5)\n"
        "    os.kill(pid, signal.SIGTERM)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    print(os.waitstatus_to_exitcode(status), flush=True)\n"
        "    return 0\n"
        "sys.exit(interrupts.run(body, as_program=False))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == str(-signal.SIGTERM), "the forked child did not die by the signal"
