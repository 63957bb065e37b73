"""Report schema v2, Markdown rendering, the PNG plot and ``pack report`` side by side."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from bench.latency import LatencyResult
from bench.markdown import render_markdown
from bench.parity import compare_output
from bench.plot import plot_latency
from bench.report import SCHEMA, Report
from bench.side_by_side import render_comparison
from packager.cli import main


def _report(scale: float = 1.0, device_time: bool = True) -> dict:
    recipe = types.SimpleNamespace(
        family="minilm", architecture="all-minilm", task="embedding", path="r.toml"
    )
    env = {"cpu": "Test CPU", "cpu_count": 2, "libraries": {"torch": "2.x"}, "warnings": ["GPU 0 is busy"]}
    report = Report.start(recipe, env)
    ref = np.linspace(0, 1, 8)
    report.add_parity("l6", "onnx", "cpu", compare_output("y", ref, ref + 1e-7, 1e-5, 0.0))
    rng = np.random.default_rng(int(scale * 10))
    samples = list(scale * (2.0 + rng.exponential(0.05, size=200)))
    result = LatencyResult(
        samples_ms=samples,
        warmup_iters=10,
        total_s=0.5,
        device_samples_ms=[s * 0.8 for s in samples] if device_time else None,
        harness_overhead_ns=250.0,
        device_timer="CUDA events on model.stream" if device_time else None,
    )
    report.add_latency("l6", "onnx", "cuda:0", 1, result, {"rss_bytes": 1}, 4)
    report.add_cross_device("l6", "onnx", ("cpu", "cuda:0"), compare_output("y", ref, ref, 1e-5, 0.0))
    report.noise_floor["l6"] = {
        "outputs": {
            "y": {
                "max_abs": 1e-7,
                "mean_abs": 1e-8,
                "max_rel": 1e-7,
                "factor": 4.0,
                "atol": 4e-7,
                "rtol": 0.0,
            }
        }
    }
    return report.to_dict()


def test_schema_v2_keys_and_raw_samples() -> None:
    data = _report()
    assert data["schema"] == SCHEMA == "weightpack.report/v2" and data["schema_version"] == 2
    lat = data["latency"][0]
    assert len(lat["samples_ms"]) == 200 and lat["harness_overhead_ns"] == 250.0
    assert lat["device_time"]["p50_ms"] == pytest.approx(0.8 * lat["p50_ms"], rel=1e-6)
    assert len(lat["device_time"]["samples_ms"]) == 200
    assert lat["p50_ci95_ms"][0] <= lat["p50_ms"] <= lat["p50_ci95_ms"][1]
    assert lat["input_sets"] == 4 and lat["memory"] == {"rss_bytes": 1}
    assert data["cross_device"][0]["devices"] == ["cpu", "cuda:0"]
    json.dumps(data)  # JSON-able


def test_markdown_renders_parity_latency_and_extras() -> None:
    md = render_markdown(_report(), plot="report.png")
    for needle in (
        "## Parity",
        "## Latency",
        "device p50",
        "noise floor",
        "across devices",
        "GPU 0 is busy",
        "![latency distributions](report.png)",
        "CUDA events on model.stream",
    ):
        assert needle in md


def test_plot_writes_a_valid_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot_latency(_report(), tmp_path / "report.png")
    assert path == tmp_path / "report.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" in data[-16:]
    import matplotlib.image

    assert matplotlib.image.imread(path).ndim == 3
    assert plot_latency({"latency": []}, tmp_path / "none.png") is None


def test_comparison_marks_significant_ratios() -> None:
    text = render_comparison([_report(1.0), _report(1.5)], ["base", "new"])
    row = next(line for line in text.splitlines() if line.startswith("| l6 | onnx | cuda:0 | 1 |"))
    assert row.rstrip(" |").endswith("*")  # 1.5x slower, CIs apart
    ratio = float(row.split("|")[-2].strip().rstrip("*"))
    assert ratio == pytest.approx(1.5, rel=0.05)


def test_pack_report_command_renders_two_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "report.json").write_text(json.dumps(_report(1.0)))
    (b / "report.json").write_text(json.dumps(_report(1.2, device_time=False)))
    assert main(["report", str(a / "report.json"), str(b), "--labels", "main,pr"]) == 0
    out = capsys.readouterr().out
    assert "side by side" in out and "main p50" in out and "pr/main" in out
    out_file = tmp_path / "cmp.md"
    assert main(["report", str(a), str(b), "--out", str(out_file)]) == 0
    assert "R2/R1" in out_file.read_text()
    assert main(["report", str(tmp_path / "missing.json")]) == 2
