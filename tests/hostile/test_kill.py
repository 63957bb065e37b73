"""Fault injection of ``pack`` itself: a child ``pack`` killed by SIGKILL at seeded points, N times.

A first, timed run of each kind says when each progress line (a finished stage: ``✓ export l6 -> onnx``,
or a reuse note) came; the stretches between them are the stages. Each kill picks a stage (spread over
them), waits for the progress line that opens it, then a seeded fraction (5-50 %) of how long that stage
took when timed: so the kills land inside fetch, export, zip and the report's writing whatever the
machine's load, which stretches every stage alike. A kill that lands (the run had not finished) is
checked: no file under a final name is incomplete (every zip is intact and matches its manifest, every JSON
parses, every .npz loads); then a re-run finishes, and afterwards no temporary is left anywhere (the out
folder, the cache, and ``$TMPDIR``, which points into the test's folder so /tmp is watched too). A run that
finished before its kill proves nothing about recovery and is only counted; the test asserts on the kills
that landed (one of each kind at least). Half the kills hit a fresh build (zips removed first), half a
resumed one (zips reused). The runs start from a copy of the session's ``pack minilm --backends onnx
--no-latency`` (reference outputs computed, checks passed). The figures are printed (run with ``-s``) and
written to ``kill-figures.json`` in the test's folder.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from packager.atomic import PARTIAL_SUFFIX
from tests.packs import pack_popen, pack_process

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("WEIGHTPACK_KILLS", "8"))  # half fresh, half resumed
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


Stage = tuple[str | None, float]
"""(the progress line that opens a stage, None for the start; how long the stage took when timed)."""


def stages_of(args: tuple[str, ...], tmpdir: Path) -> list[Stage]:
    """Run ``pack ARGS`` to its end (it must pass) and time the stretches between its progress lines."""
    start = time.perf_counter()
    child = pack_popen(
        *args, tmpdir=tmpdir, env={"COLUMNS": "200"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    marks: list[tuple[str | None, float]] = [(None, start)]
    text = []
    for line in child.stderr:
        text.append(line)
        marks.extend((mark, time.perf_counter()) for mark in progress_lines(line))
    assert child.wait() == 0, "".join(text)[-3000:]
    ends = [t for _, t in marks[1:]] + [time.perf_counter()]
    return [(mark, end - t) for (mark, t), end in zip(marks, ends, strict=True)]


def kill_at(args: tuple[str, ...], tmpdir: Path, opened_by: str | None, delay_s: float) -> tuple[bool, str]:
    """Start ``pack ARGS``; once the progress line ``opened_by`` has come (at once for None), wait
    ``delay_s`` and SIGKILL its process group, unless it finished first. Returns (killed, the last
    progress line it printed)."""
    child = pack_popen(
        *args,
        tmpdir=tmpdir,
        env={"COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    seen: list[str] = []
    opened = threading.Event()
    if opened_by is None:
        opened.set()
    assert child.stderr is not None

    def read(stream) -> None:
        for line in stream:
            for mark in progress_lines(line):
                seen.append(mark)
                if mark == opened_by:
                    opened.set()

    reader = threading.Thread(target=read, args=(child.stderr,))
    reader.start()
    while not opened.wait(0.02) and child.poll() is None:
        pass
    killed = False
    if opened.is_set():
        try:
            child.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            killed = True
    child.wait()
    reader.join()
    return killed, seen[-1] if seen else "(start)"


def spread(stages: list[Stage], n: int) -> list[Stage]:
    """``n`` of ``stages``, spread from the first to the last (all of them, in turn, when ``n`` is more)."""
    if n >= len(stages) or n < 2:
        return [stages[i % len(stages)] for i in range(n)]
    return [stages[round(i * (len(stages) - 1) / (n - 1))] for i in range(n)]


def test_kill_9_at_random_points_then_rerun(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    out, cache, tmpdir = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    shutil.copytree(minilm_pack_onnx, out)  # the references computed and the checks passed, as a user's
    tmpdir.mkdir()
    args = ("minilm", "--backends", "onnx", "--no-latency", "--out", str(out), "--cache-dir", str(cache))

    def remove_zips() -> None:  # a fresh build: export and zip run again
        for path in [*out.glob("*.zip"), *out.glob("*.manifest.json")]:
            path.unlink()

    remove_zips()
    stages = {"fresh": stages_of(args, tmpdir), "resumed": stages_of(args, tmpdir)}
    plan = {kind: spread(found, KILLS // 2) for kind, found in stages.items()}
    figures: dict = {
        "kills": 0,
        "landed": {"fresh": 0, "resumed": 0},
        "finished_before_kill": 0,
        "killed_after": {},
        "incomplete_after_kill": 0,
        "reruns_failed": 0,
        "temporaries_after_rerun": 0,
    }
    for i in range(KILLS // 2 * 2):
        kind = "fresh" if i % 2 == 0 else "resumed"
        if kind == "fresh":
            remove_zips()
        opened_by, took = plan[kind][i // 2]
        delay = rng.uniform(0.05, 0.5) * took  # inside the stage even when this run goes twice as fast
        killed, last = kill_at(args, tmpdir, opened_by, delay)
        if not killed:  # the run was done before its kill: nothing to recover from
            figures["finished_before_kill"] += 1
            continue
        figures["kills"] += 1
        figures["landed"][kind] += 1
        where = last.split()[1] if last.startswith("✓ ") else last.split()[0]
        figures["killed_after"][where] = figures["killed_after"].get(where, 0) + 1
        bad = incomplete_outputs(out)
        figures["incomplete_after_kill"] += len(bad)
        assert bad == [], (i, opened_by, delay, bad)
        rerun = pack_process(*args, tmpdir=tmpdir, env={"COLUMNS": "200"})
        figures["reruns_failed"] += rerun.returncode != 0
        assert rerun.returncode == 0, (i, opened_by, delay, rerun.stderr[-3000:])
        left = temporaries(out, cache, tmpdir)
        figures["temporaries_after_rerun"] += len(left)
        assert left == [], (i, opened_by, delay, left)
    figures.update(
        n=KILLS // 2 * 2,
        seed=SEED,
        stages={k: [(m or "(start)", round(t, 2)) for m, t in v] for k, v in stages.items()},
    )
    (tmp_path / "kill-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nkill -9 figures:", json.dumps(figures))
    # every kill that landed was checked above; how many land is the machine's business (a kill waits for
    # its stage to open, so load moves it within the stage, rarely past the run's end): one of each kind at
    # least, or the test proved nothing about that kind
    assert all(figures["landed"].values()), figures
