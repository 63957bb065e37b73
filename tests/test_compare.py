"""pack compare: planted slowdown and numerical drift are detected; an unchanged run is not flagged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from packager import compare
from packager.cli import main


def _synthetic(samples: list[float], max_abs: float = 1e-7) -> dict:
    env = {"cpu": "Test CPU", "cpu_count": 2, "machine": "x86_64", "libraries": {"onnxruntime": "1.0"}}
    return {
        "family": "demo",
        "created_at": "t",
        "environment": env,
        "latency": [
            {"variant": "v", "backend": "onnx", "device": "cpu", "batch_size": 1, "samples_ms": samples}
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


def _noisy(seed: int, n: int = 60, scale: float = 1.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(scale * (10 + rng.gamma(2.0, 0.3, size=n)))


def test_slowdown_detected_unchanged_not_flagged_synthetic() -> None:
    base = _synthetic(_noisy(1))
    assert compare.compare_reports(base, _synthetic(_noisy(2))).regressed is False
    slow = compare.compare_reports(base, _synthetic(_noisy(2, scale=1.2)))
    assert slow.regressed and slow.latency[0].verdict == "regression"
    fast = compare.compare_reports(base, _synthetic(_noisy(2, scale=0.7)))
    assert not fast.regressed and fast.latency[0].verdict == "improvement"


def test_drift_inside_tolerance_is_flagged() -> None:
    base = _synthetic(_noisy(1), max_abs=1e-7)
    result = compare.compare_reports(base, _synthetic(_noisy(1), max_abs=2e-6))
    assert result.regressed and result.parity[0].verdict == "regression"
    assert "inside tolerance" in result.parity[0].reasons[0]
    # Growth from an exact zero is measured against 1 % of atol, so float noise does not trip it.
    zero = compare.compare_reports(_synthetic(_noisy(1), 0.0), _synthetic(_noisy(1), 5e-8))
    assert not zero.regressed


def test_environment_mismatch_refused_unless_allowed() -> None:
    base, cur = _synthetic(_noisy(1)), _synthetic(_noisy(1))
    cur["environment"] = {**cur["environment"], "cuda": {"devices": [{"name": "NVIDIA H100"}]}}
    with pytest.raises(compare.EnvironmentMismatchError, match="gpus"):
        compare.compare_reports(base, cur)
    result = compare.compare_reports(base, cur, allow_env_mismatch=True)
    assert not result.environment_match and result.environment_differences
    assert compare.env_key(base["environment"]) != compare.env_key(cur["environment"])


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _resampled(report: dict, seed: int) -> dict:
    """The same run, re-drawn: each latency row's samples bootstrapped (an unchanged run)."""
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(report)
    for row in out["latency"]:
        row["samples_ms"] = list(rng.choice(row["samples_ms"], size=len(row["samples_ms"])))
    return out


@pytest.mark.slow
def test_real_report_planted_regressions(
    minilm_pack_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = json.loads((minilm_pack_onnx / "report.json").read_text())
    base = _write(tmp_path / "base.json", real)

    unchanged = _write(tmp_path / "unchanged.json", _resampled(real, 7))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["compare", str(base), str(unchanged), "--markdown", str(tmp_path / "u.md")]) == 0
    assert "no regression" in (tmp_path / "u.md").read_text()
    assert "no regression" in summary.read_text()

    slow = copy.deepcopy(real)
    for row in slow["latency"]:
        row["samples_ms"] = [s * 1.2 for s in row["samples_ms"]]
    slow_path = _write(tmp_path / "slow.json", slow)
    assert main(["compare", str(base), str(slow_path), "--markdown", str(tmp_path / "s.md")]) == 1
    assert "REGRESSION" in (tmp_path / "s.md").read_text()

    drift = copy.deepcopy(real)
    row = next(p for p in drift["parity"] if p["output"] == "sentence_embedding")
    row["max_abs"] *= 20
    assert row["max_abs"] < row["atol"] and row["passed"]  # still inside tolerance
    drift_path = _write(tmp_path / "drift.json", drift)
    assert main(["compare", str(base), str(drift_path), "--json"]) == 1

    other = copy.deepcopy(real)
    other["environment"]["cpu"] = "Some other CPU"
    other_path = _write(tmp_path / "other.json", other)
    assert main(["compare", str(base), str(other_path)]) == 2
    assert main(["compare", str(base), str(other_path), "--allow-env-mismatch"]) == 0
