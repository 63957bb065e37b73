"""pack calibrate in the nightly's form: a pool of recorded nights (simulated here, real in the slow test),
windows of 5 nights against 1 over the family's full matrix, the per-nightly false-alarm rate with an
exact interval that the windows' overlap cannot make too narrow, and the detection of a planted slowdown
in one row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.stats import binomial_interval
from packager.cli import main
from tests.nightsim import MATRIX, Row, night

QUIET = tuple(Row(r.backend, r.batch_size, r.ms, 0.02, 0.015) for r in MATRIX)


def _write_pool(root: Path, nights: int, slow: float = 1.3, seed: int = 0) -> Path:
    """``nights`` nights in the layout pack calibrate records: one run file per package and run."""
    rng = np.random.default_rng(seed)
    for n in range(nights):
        folder = root / f"night-{n:02d}"
        clean = night(rng, QUIET, k=3, name=f"n{n}")
        planted = night(rng, QUIET, k=3, slow={("onnx", 8): slow}, name=f"p{n}")
        for side, runs in (("clean", clean), ("planted", planted)):
            for j, run in enumerate(runs):
                for backend in sorted({r.backend for r in QUIET}):
                    if side == "planted" and backend != "onnx":
                        continue
                    one = {**run, "latency": [r for r in run["latency"] if r["backend"] == backend],
                           "parity": [p for p in run["parity"] if p["backend"] == backend],
                           "meta": {"run": {"round": j, "package": f"v-{backend}-cpu"}}}  # fmt: skip
                    if side == "planted":
                        one["meta"]["run"]["planted"] = {"ratio_in_process": slow}
                    path = folder / side / f"v-{backend}-cpu" / f"run-{j:02d}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(one))
        grown = [{**p, "max_abs": 1.2e-6} for p in clean[0]["parity"] if p["backend"] == "onnx"]
        drift = {
            **clean[0],
            "latency": [],
            "parity": grown,
            "meta": {"run": {"round": 0, "package": "v-onnx-cpu"}},
        }
        (folder / "drift" / "v-onnx-cpu").mkdir(parents=True)
        (folder / "drift" / "v-onnx-cpu" / "run-00.json").write_text(json.dumps(drift))
        info = {"night": n, "k": 3, "plant": "compute:0.3@8", "planted_package": "v-onnx-cpu", "wall_s": 60.0,
                "load_before": [1.0 + n % 3, 1, 1], "load_after": [2.0, 1, 1]}  # fmt: skip
        (folder / "night.json").write_text(json.dumps(info))
    return root


def test_calibration_reports_false_alarms_per_nightly_with_an_exact_interval(tmp_path: Path) -> None:
    pool = _write_pool(tmp_path / "pool", 14)
    out = tmp_path / "cal.json"
    md = tmp_path / "cal.md"
    code = main(
        ["calibrate", "--from", str(pool), "--window", "5", "--json-out", str(out), "--markdown", str(md)]
    )
    result = json.loads(out.read_text())
    fa = result["false_alarms"]
    # 6 baseline nights, 8 candidates, each against every window of 5 of the 6 (the default cap)
    assert result["baseline_pool"] == [f"night-0{i}" for i in range(6)] and fa["trials"] == 8
    assert result["windows_per_candidate"] == 6 and fa["draws"] == 48
    assert (fa["lower"], fa["upper"]) == pytest.approx(binomial_interval(fa["flagged"], 8))
    assert fa["upper"] > 0.3  # 8 trials cannot show a 10 % rate: the goal is missed, and says so
    assert code == 1 and result["goals"]["false_alarm"] is False
    det = result["detection"]
    assert result["planted_row"] == "v/onnx/cpu/bs8" and det["trials"] == 8 and det["detected"] >= 6
    assert 1.2 < result["plant_ratio"]["ratio"] < 1.4 and result["plant_ratio"]["nights"] == 14
    assert result["drift"] == {"trials": 8, "detected": 8, "growth": [12.0, 12.0]}
    assert len(result["noise"]) == 8 and {"W5k3", "W10k10"} <= set(result["noise"][0]["detectable"])
    text = md.read_text()
    assert "false alarms per nightly" in text and "| upper <= 10%: **MISSED** |" in text
    assert "Holm step-down" in text and "night-to-night CoV" in text


def test_enough_candidate_nights_meet_the_goal(tmp_path: Path) -> None:
    """36 candidates without a false alarm: exact 95 % upper bound 9.7 % <= 10 %."""
    pool = _write_pool(tmp_path / "pool", 42, seed=1)
    out = tmp_path / "cal.json"
    args = ["calibrate", "--from", str(pool), "--window", "5", "--max-windows", "2", "--json-out", str(out)]
    assert main(args) == 0
    fa = json.loads(out.read_text())["false_alarms"]
    assert fa["trials"] == 36 and fa["flagged"] == 0 and fa["upper"] == pytest.approx(0.0974, abs=1e-4)


def test_too_few_nights_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pool = _write_pool(tmp_path / "pool", 11)
    assert main(["calibrate", "--from", str(pool)]) == 2  # windows of 10 (the nightly's) need 12 nights
    assert "a baseline pool of 11 and at least one candidate night are needed" in capsys.readouterr().err
    assert main(["calibrate", "--from", str(pool), "--window", "0"]) == 2
    assert "--window must be >= 1" in capsys.readouterr().err


def test_one_recorder_per_pool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A second pack calibrate recording into the same pool is refused (its runs would time each other)."""
    from filelock import FileLock

    pack_out = tmp_path / "pack"
    pack_out.mkdir()
    row = {"variant": "l6", "backend": "onnx", "device": "cpu"}
    report = {"family": "minilm", "packages": [], "latency": [{**row, "batch_size": 1}],
              "parity": [{**row, "output": "y", "max_abs": 1e-6, "atol": 1e-5}]}  # fmt: skip
    (pack_out / "report.json").write_text(json.dumps(report))
    pool = tmp_path / "pool"
    pool.mkdir()
    with FileLock(str(pool / ".record.lock")):
        assert main(["calibrate", str(pack_out), "--into", str(pool), "--nights", "2"]) == 2
    assert "another pack calibrate is recording into this pool" in capsys.readouterr().err


def test_real_nights_record_the_planted_work_and_its_ratio(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    """Two real nights of the onnx package (k = 2, short runs): the pool's layout, the planted work inside
    the graph with the ratio it produced in the process, and the evaluation's figures."""
    pool = tmp_path / "pool"
    args = ["calibrate", str(minilm_pack_onnx), "--nights", "2", "--window", "1", "--window-pool", "1"]
    args += ["--runs", "2", "--batch-sizes", "1,2", "--min-iters", "10", "--min-time-s", "0.05", "--quiet"]
    code = main([*args, "--into", str(pool), "--json-out", str(tmp_path / "cal.json")])
    assert code == 1  # one candidate night cannot bound the false-alarm rate
    result = json.loads((tmp_path / "cal.json").read_text())
    assert result["planted_row"] == "l6/onnx/cpu/bs2" and result["plant"] == "compute:0.2@2"
    run = json.loads(next((pool / "night-00" / "planted").rglob("run-00.json")).read_text())
    planted = run["meta"]["run"]["planted"]
    assert planted["units"] >= 1 and "onnx graph" in planted["where"] and planted["ratio_in_process"] > 0
    assert result["plant_ratio"]["nights"] == 2 and result["drift"]["detected"] == 1
    info = json.loads((pool / "night-01" / "night.json").read_text())
    assert info["k"] == 2 and len(info["load_before"]) == 3
