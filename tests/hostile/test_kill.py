"""Fault injection of ``pack`` itself: a child ``pack`` killed by SIGKILL at seeded random points, N times.

After each kill: no file under a final name is incomplete (every zip is intact and matches its manifest,
every JSON parses, every .npz loads); then a re-run finishes, and afterwards no temporary is left anywhere
(the out folder, the cache, and ``$TMPDIR``, which points into the test's folder so /tmp is watched too).
Half the kills hit a fresh build (zips removed first), half a resumed one (zips reused). The figures are
printed (run with ``-s``) and written to ``kill-figures.json`` in the test's folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
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


def test_kill_9_at_random_points_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    out, cache, tmpdir = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir)}
    cmd = [sys.executable, "-m", "packager.cli", "minilm", "--backends", "onnx", "--no-latency"]
    cmd += ["--out", str(out), "--cache-dir", str(cache)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )

    def timed() -> float:
        started = time.monotonic()
        proc = run()
        assert proc.returncode == 0, proc.stderr[-3000:]
        return time.monotonic() - started

    fresh_s = timed()  # a fresh build
    resumed_s = timed()  # the same, every zip reused
    figures: dict = {
        "kills": 0,
        "finished_before_kill": 0,
        "stages": {},
        "incomplete_after_kill": 0,
        "reruns_failed": 0,
        "temporaries_after_rerun": 0,
    }
    for i in range(KILLS):
        if i % 2 == 0:  # a fresh build: export and zip run again
            for path in [*out.glob("*.zip"), *out.glob("*.manifest.json")]:
                path.unlink()
        delay = rng.uniform(0.2, 0.9 * (fresh_s if i % 2 == 0 else resumed_s))
        child = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, err = child.communicate(timeout=delay)
            figures["finished_before_kill"] += 1
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            _, err = child.communicate()
            figures["kills"] += 1
        done = [
            line.split()[1] for line in err.splitlines() if line.startswith("✓ ") and len(line.split()) > 1
        ]
        stage = f"after {done[-1]}" if done else "before the first stage"  # the last stage completed
        figures["stages"][stage] = figures["stages"].get(stage, 0) + 1
        bad = incomplete_outputs(out)
        figures["incomplete_after_kill"] += len(bad)
        assert bad == [], (i, delay, bad)
        rerun = run()
        figures["reruns_failed"] += rerun.returncode != 0
        assert rerun.returncode == 0, (i, delay, rerun.stderr[-3000:])
        left = temporaries(out, cache, tmpdir)
        figures["temporaries_after_rerun"] += len(left)
        assert left == [], (i, delay, left)
    figures.update(n=KILLS, seed=SEED, fresh_run_s=round(fresh_s, 1), resumed_run_s=round(resumed_s, 1))
    (tmp_path / "kill-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nkill -9 figures:", json.dumps(figures))
