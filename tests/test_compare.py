"""pack compare: the run is the unit inside a night. Synthetic runs check the run-level statistics (false
alarms, detection, inconclusive rows, windows, pairs); real runs (``slow``) check that unchanged processes
are not flagged while planted slowdown and drift are. Nights as a level, the multiplicity rule and the
verdicts: tests/test_nights.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import stats
from bench.fingerprint import env_key
from bench.planted import PlantedModel
from bench.regression import Thresholds, compare_runs
from packager.cli import main
from packager.compare.collect import Target, schedule, schedule_pairs
from packager.compare.runsets import EnvironmentMismatchError, compare_sets
from packager.errors import CheckFailedError, RecipeError
from packager.recipes import load_recipe
from tests.nightsim import write_night

ROOT = Path(__file__).resolve().parents[1]
RUNS = Thresholds(method="runs")  # runs of one session, compared as independent runs

ENV = {"cpu": "Test CPU", "cpu_count": 2, "machine": "x86_64", "libraries": {"onnxruntime": "1.0"}}


def _run(
    samples, max_abs: float = 1e-7, round_: int = 0, package: str = "v-onnx-cpu", batch: int = 1
) -> dict:
    """A report-shaped run with one latency row and one parity row."""
    return {
        "family": "demo",
        "created_at": f"r{round_}",
        "environment": ENV,
        "meta": {"run": {"round": round_, "package": package}},
        "latency": [
            {
                "variant": "v",
                "backend": "onnx",
                "device": "cpu",
                "batch_size": batch,
                "samples_ms": list(samples),
            }
        ],
        "parity": [
            {
                "variant": "v",
                "backend": "onnx",
                "device": "cpu",
                "output": "y",
                "max_abs": max_abs,
                "atol": 1e-5,
                "passed": True,
            }
        ],
    }


def _runs(rng, k: int, run_sd: float, scale: float = 1.0, n: int = 40, shared=None) -> list[dict]:
    """k runs: each a process with its own speed (lognormal, ``run_sd``) and gamma noise inside.
    ``shared`` adds a per-round machine effect common to both sides (what A/B pairs cancel)."""
    runs = []
    for r in range(k):
        speed = scale * np.exp(rng.normal(0, run_sd) + (shared[r] if shared is not None else 0.0))
        runs.append(_run(speed * (10 + rng.gamma(2.0, 0.3, size=n)), round_=r))
    return runs


def test_one_run_per_side_is_inconclusive_not_a_regression() -> None:
    # The A/A case: two processes whose medians differ by 31 %, each tight inside (CoV ~5 %).
    rng = np.random.default_rng(0)
    a = _run(5.70 * np.exp(0.05 * rng.standard_normal(200)))
    b = _run(7.46 * np.exp(0.05 * rng.standard_normal(200)))
    result = compare_runs([a], [b], RUNS)
    row = result.latency[0]
    assert not result.regressed and row.verdict == "inconclusive", row
    assert row.median.low is None and "one run per side" in row.note
    # A prior run-to-run CoV from calibration makes single runs comparable: 31 % against 2 % noise is real.
    prior = compare_runs([a], [b], Thresholds(method="runs", run_cov=0.02))
    assert prior.regressed and prior.latency[0].median.low > 1.05
    # ... and against this machine's 40 % it is not.
    assert not compare_runs([a], [b], Thresholds(method="runs", run_cov=0.4)).regressed
    # Nights (the default): one earlier night says nothing about night-to-night noise.
    night = compare_runs([a], [b]).latency[0]
    assert night.verdict == "inconclusive" and "night-to-night noise unknown" in night.note


@pytest.mark.slow
@pytest.mark.parametrize("method", ["runs", "pairs", "bootstrap"])
def test_aa_false_alarms_stay_rare_with_between_run_noise(method: str) -> None:
    """200 A/A comparisons, k=5 runs each with 10 % run-to-run noise: flagged at most 3 %."""
    t = Thresholds(method=method, resamples=400)
    flagged = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        flagged += compare_runs(_runs(rng, 5, 0.10), _runs(rng, 5, 0.10), t).regressed
    assert flagged <= 6, flagged


def test_samples_as_unit_would_cry_wolf_runs_do_not() -> None:
    """Why the run is the unit: the old rule (bootstrap of one run's samples vs another's, lower CI bound
    above 1.05) flags unchanged runs often; the same data as 5 runs per side, compared by run, does not."""
    naive = runs = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = _runs(rng, 5, 0.10), _runs(rng, 5, 0.10)
        pa, pb = np.asarray(a[0]["latency"][0]["samples_ms"]), np.asarray(b[0]["latency"][0]["samples_ms"])
        boot = [np.median(rng.choice(pb, pb.size)) / np.median(rng.choice(pa, pa.size)) for _ in range(300)]
        naive += np.percentile(boot, 2.5) > 1.05
        runs += compare_runs(a, b, RUNS).regressed
    assert naive >= 8 and runs <= 1, (naive, runs)


def test_slowdown_detected_when_noise_allows() -> None:
    detected = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        result = compare_runs(_runs(rng, 5, 0.03), _runs(rng, 5, 0.03, scale=1.2), RUNS)
        detected += result.latency[0].verdict == "regression"
    assert detected >= 45, detected
    rng = np.random.default_rng(1)
    fast = compare_runs(_runs(rng, 5, 0.03), _runs(rng, 5, 0.03, scale=0.7), RUNS)
    assert not fast.regressed and fast.latency[0].verdict == "improvement"


def test_noisy_row_is_inconclusive_with_detectable_effect() -> None:
    rng = np.random.default_rng(3)
    result = compare_runs(_runs(rng, 3, 0.25), _runs(rng, 3, 0.25), RUNS)
    row = result.latency[0]
    assert row.verdict == "inconclusive" and not result.regressed
    assert row.median.noise > 0.05 and row.median.detectable > 0.2
    assert f"smallest detectable slowdown at this noise {row.median.detectable:.0%}" in row.note
    assert "runs per side would decide it" in row.note or "no number of runs per side" in row.note
    assert row.between_cov["baseline"] > 0.05 and 0 < row.within_cov["baseline"] < 0.2


def test_pairs_cancel_a_drifting_machine() -> None:
    """A machine whose speed swings 30 % between rounds: runs vs runs cannot see a 1.3x slowdown, the
    back-to-back pairs can."""
    rng = np.random.default_rng(5)
    shared = rng.normal(0, 0.3, size=8)
    a = _runs(rng, 8, 0.02, shared=shared)
    b = _runs(rng, 8, 0.02, scale=1.3, shared=shared)
    assert compare_runs(a, b, RUNS).latency[0].verdict != "regression"
    paired = compare_runs(a, b, Thresholds(method="pairs"))
    assert paired.latency[0].verdict == "regression" and paired.latency[0].median.df == 7


def test_hierarchical_bootstrap_includes_between_run_variance() -> None:
    rng = np.random.default_rng(11)
    runs_a = [r["latency"][0]["samples_ms"] for r in _runs(rng, 6, 0.2)]
    runs_b = [r["latency"][0]["samples_ms"] for r in _runs(rng, 6, 0.2)]
    iv = stats.hierarchical_bootstrap(runs_a, runs_b, 50, resamples=1000)
    within_only = stats.hierarchical_bootstrap([np.concatenate(runs_a)], [np.concatenate(runs_b)], 50)
    assert iv.high / iv.low > 1.2  # runs 20 % apart widen the interval ...
    assert within_only.low is None  # ... and one pooled "run" per side has no between-run variance at all
    with pytest.raises(ValueError, match="paired runs need equal"):
        stats.paired_interval([1.0, 2.0], [1.0])


def test_drift_inside_tolerance_is_flagged() -> None:
    rng = np.random.default_rng(1)
    base = _runs(rng, 2, 0.01)
    drift = [_run(r["latency"][0]["samples_ms"], max_abs=2e-6) for r in base]
    result = compare_runs(base, drift, RUNS)
    assert result.regressed and result.parity[0].verdict == "regression"
    assert "inside tolerance" in result.parity[0].reasons[0]
    # Growth from an exact zero is measured against 1 % of atol, so float noise does not trip it.
    zero = compare_runs([_run([1.0, 1.1], 0.0)], [_run([1.0, 1.1], 5e-8)], latency=False)
    assert not zero.regressed


def test_environment_mismatch_refused_unless_allowed() -> None:
    base, cur = _run([1.0, 1.1]), _run([1.0, 1.1])
    cur["environment"] = {**ENV, "cuda": {"devices": [{"name": "NVIDIA H100"}]}}
    with pytest.raises(EnvironmentMismatchError, match="gpus"):
        compare_sets([base], [cur])
    result = compare_sets([base], [cur], allow_env_mismatch=True)
    assert not result.environment_match and result.environment_differences
    assert env_key(base["environment"]) != env_key(cur["environment"])


_write_runs = write_night  # one run file per run, as pack runs writes them


def test_cli_window_of_nights_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    nights = [_write_runs(tmp_path / f"night{i}", _runs(rng, 3, 0.02)) for i in range(3)]
    same = _write_runs(tmp_path / "same", _runs(rng, 3, 0.02))
    slow = _write_runs(tmp_path / "slow", _runs(rng, 3, 0.02, scale=1.3))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md = tmp_path / "same.md"
    assert main(["compare", *map(str, nights), str(same), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "no regression" in text and "| 3 / 9, 3 |" in text and "night / run CoV" in text
    assert "no regression" in summary.read_text()
    assert main(["compare", *map(str, nights), str(slow), "--markdown", str(tmp_path / "s.md")]) == 1
    assert "REGRESSION" in (tmp_path / "s.md").read_text()
    other = _run([1.0, 1.1])
    other["environment"] = {**ENV, "cpu": "Some other CPU"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["compare", str(nights[0]), str(tmp_path / "other.json")]) == 2
    assert main(["compare", str(tmp_path / "missing"), str(same)]) == 2
    assert main(["compare", str(same)]) == 2


def test_schedules_interleave_and_counterbalance(tmp_path: Path) -> None:
    a, b, c = (Target(tmp_path, "v", name, "cpu") for name in ("x", "y", "z"))
    order = [(r, t.backend) for r, t in schedule([a, b, c], 3)]
    assert order == [(0, "x"), (0, "y"), (0, "z"), (1, "y"), (1, "z"), (1, "x"), (2, "z"), (2, "x"), (2, "y")]
    pairs = [(r, t.backend) for r, t in schedule_pairs([(a, b)], 3)]
    assert pairs == [(0, "x"), (0, "y"), (1, "y"), (1, "x"), (2, "x"), (2, "y")]


def test_recipe_runs_key(tmp_path: Path) -> None:
    text = (ROOT / "recipes" / "minilm.toml").read_text()
    (tmp_path / "minilm.toml").write_text(text.replace("min_time_s = 0.5", "min_time_s = 0.5\nruns = 7"))
    assert load_recipe(tmp_path / "minilm.toml").bench.runs == 7
    (tmp_path / "minilm.toml").write_text(text.replace("min_time_s = 0.5", "min_time_s = 0.5\nruns = 0"))
    with pytest.raises(RecipeError, match=r"bench\.runs.*an integer >= 1"):
        load_recipe(tmp_path / "minilm.toml")


def test_bad_input_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", str(tmp_path)]) == 2
    assert "report.json" in capsys.readouterr().err
    runs = _write_runs(tmp_path / "r", _runs(np.random.default_rng(0), 2, 0.01))
    assert main(["compare", str(runs), str(runs), "--clock", "cpu"]) == 2
    assert "cpu_samples_ms" in capsys.readouterr().err
    assert main(["compare", str(runs), str(runs), "--threshold", "0"]) == 2
    assert main(["calibrate", "--from", str(tmp_path / "r")]) == 2
    assert "no recorded nights" in capsys.readouterr().err


@pytest.mark.slow
def test_real_ab_of_an_unchanged_package_exits_0(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    """pack ab with the same package on both sides: 2 rounds (AB, BA) of fresh processes, not flagged."""
    md = tmp_path / "ab.md"
    args = ["ab", str(minilm_pack_onnx), str(minilm_pack_onnx), "--runs", "2", "--batch-sizes", "1"]
    args += [
        "--min-iters",
        "10",
        "--min-time-s",
        "0.1",
        "--into",
        str(tmp_path / "ab"),
        "--markdown",
        str(md),
    ]
    assert main(args) == 0
    text = md.read_text()
    assert "no regression" in text and "A/B pairs" in text and "| 1 / 2, 2 |" in text
    orders = [
        json.loads(p.read_text())["meta"]["run"]["position"]
        for p in sorted((tmp_path / "ab").rglob("run-*.json"))
    ]
    assert sorted(orders) == [0, 1, 2, 3]


def test_planted_model_offsets_float_outputs_only() -> None:
    class Inner:
        def infer(self, inputs: dict) -> dict:
            return {"y": np.zeros(3, np.float32), "ids": np.arange(3)}

    out = PlantedModel(Inner(), drift=1e-3).infer({})
    assert out["y"].dtype == np.float32 and np.allclose(out["y"], 1e-3)
    assert out["ids"].tolist() == [0, 1, 2]  # integer outputs are never shifted


def test_a_failing_run_names_the_package_and_keeps_its_exit_code(tmp_path: Path) -> None:
    """The run's own error (here: bad input, exit 2) comes back as one line with the same exit code."""
    from packager.compare.collect import Settings, run_one

    (tmp_path / "report.json").write_text(json.dumps({"family": "minilm", "packages": [], "latency": []}))
    with pytest.raises(
        CheckFailedError, match=r"run of l6-onnx-cpu failed \(exit 2\): .*no package l6/onnx"
    ) as info:
        run_one(Target(tmp_path, "l6", "onnx", "cpu"), tmp_path / "run.json", Settings(), {})
    assert info.value.exit_code == 2 and "Traceback" not in str(info.value)
    assert not (tmp_path / "run.json").exists()
