"""Fault injection of ``pack`` itself: a child ``pack`` killed by SIGKILL at seeded random points, N times.

Each kill lands at a seeded random point of its run's span (5-90 % of how long such a run took when timed
first), so the kills land across the whole pipeline; the stage each one interrupted is read from the
run's progress lines. After each kill: no file under a final name is incomplete
(every zip is intact and matches its manifest, every JSON parses, every .npz loads); then a re-run
finishes, and afterwards no temporary is left anywhere (the out folder, the cache, and ``$TMPDIR``, which
points into the test's folder so /tmp is watched too). Half the kills hit a fresh build (zips removed
first), half a resumed one (zips reused). The figures are printed (run with ``-s``) and written to
``kill-figures.json`` in the test's folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager.atomic import PARTIAL_SUFFIX
from tests.hostile.helpers import ROOT

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("WEIGHTPACK_KILLS", "20"))
SEED = 20261128


def temporaries(*roots: Path) -> list[str]:
    """Everything that looks like a temporary under ``roots`` (links not followed)."""
    found = []
    for root in roots:
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                if name.endswith((PARTIAL_SUFFIX, ".part", ".tmp", ".incomplete")) or name.startswith(
                    (".staging-", "weightpack-", "tmp")
                ):
                    found.append(os.path.relpath(os.path.join(directory, name), root.parent))
    return sorted(found)


def incomplete_outputs(out: Path) -> list[str]:
    """Files under a final name that are not whole."""
    bad = []
    for path in out.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.name.endswith(PARTIAL_SUFFIX):
            continue
        try:
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as zf:
                    if zf.testzip() is not None:
                        bad.append(f"{path.name}: corrupt member")
                manifest = path.with_name(path.name[: -len(".zip")] + ".manifest.json")
                if (
                    manifest.is_file()
                    and json.loads(manifest.read_text())["zip"]["size"] != path.stat().st_size
                ):
                    bad.append(f"{path.name}: does not match its manifest")
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".npz":
                with np.load(path) as data:
                    [data[k] for k in data.files]
        except Exception as exc:  # any failure to read back is the finding
            bad.append(f"{path.name}: {type(exc).__name__}: {exc}")
    return bad


def progress_lines(text: str) -> list[str]:
    """The lines that mark progress: a finished stage (``✓ export l6 -> onnx``) or a reuse note."""
    return [line.strip() for line in text.splitlines() if line.startswith("✓ ") or "reusing" in line]


def kill_at(cmd: list[str], env: dict[str, str], delay_s: float) -> tuple[bool, str]:
    """Start ``cmd`` and SIGKILL its process group ``delay_s`` seconds later, unless it finished first.
    Returns (killed, the last progress line it printed)."""
    child = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    assert child.stderr is not None
    reader = threading.Thread(target=lambda: [seen.extend(progress_lines(line)) for line in child.stderr])
    reader.start()
    try:
        child.wait(timeout=delay_s)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        killed = True
    child.wait()
    reader.join()
    return killed, seen[-1] if seen else "(start)"


def test_kill_9_at_random_points_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    out, cache, tmpdir = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "packager.cli", "minilm", "--backends", "onnx", "--no-latency"]
    cmd += ["--out", str(out), "--cache-dir", str(cache)]

    def run() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    def remove_zips() -> None:  # a fresh build: export and zip run again
        for path in [*out.glob("*.zip"), *out.glob("*.manifest.json")]:
            path.unlink()

    def timed_run() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    # how long a fresh build and a resumed run take: each kill lands at a random point of its run's span
    run()  # the first run also computes the reference outputs, which later runs read back
    remove_zips()
    durations = {"fresh": timed_run(), "resumed": timed_run()}
    figures: dict = {
        "kills": 0,
        "finished_before_kill": 0,
        "killed_after": {},
        "incomplete_after_kill": 0,
        "reruns_failed": 0,
        "temporaries_after_rerun": 0,
    }
    for i in range(KILLS):
        kind = "fresh" if i % 2 == 0 else "resumed"
        if kind == "fresh":
            remove_zips()
        delay = rng.uniform(0.05, 0.9) * durations[kind]
        killed, last = kill_at(cmd, env, delay)
        figures["kills" if killed else "finished_before_kill"] += 1
        where = last.split()[1] if last.startswith("✓ ") else last.split()[0]
        figures["killed_after"][where] = figures["killed_after"].get(where, 0) + killed
        bad = incomplete_outputs(out)
        figures["incomplete_after_kill"] += len(bad)
        assert bad == [], (i, delay, bad)
        rerun = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        figures["reruns_failed"] += rerun.returncode != 0
        assert rerun.returncode == 0, (i, delay, rerun.stderr[-3000:])
        left = temporaries(out, cache, tmpdir)
        figures["temporaries_after_rerun"] += len(left)
        assert left == [], (i, delay, left)
    assert figures["kills"] >= KILLS * 3 // 4, figures  # the kills land mid-run
    figures.update(n=KILLS, seed=SEED, run_seconds={k: round(v, 2) for k, v in durations.items()})
    (tmp_path / "kill-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nkill -9 figures:", json.dumps(figures))
