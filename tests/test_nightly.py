"""Nightly plugin (inert without its options; parity + benchmark per case with them) and the fan-out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from packager.nightly import fanout
from tests.hermetic import child_env

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _plugin_args() -> list[str]:
    """Load the plugin by name only when its entry point is not installed (pytest refuses it twice)."""
    from importlib.metadata import entry_points

    installed = any(ep.name == "weightpack" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "packager.nightly.plugin"]


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = child_env()
    cmd = [sys.executable, "-m", "pytest", *_plugin_args(), "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_entry_point_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"weightpack": "packager.nightly.plugin"}
    assert "ray" in data["project"]["optional-dependencies"]


@pytest.mark.slow
def test_plugin_is_inert_without_its_options() -> None:
    base = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:weightpack",
            "tests/unit",
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    with_plugin = _pytest("--collect-only", "-q", "tests/unit")
    assert with_plugin.returncode == 0, with_plugin.stderr
    lines = [line for line in with_plugin.stdout.splitlines() if "::" in line]
    assert lines == [line for line in base.stdout.splitlines() if "::" in line]
    assert not any("nightly" in line for line in lines)


@pytest.mark.slow
def test_plugin_parity_and_benchmark(minilm_pack_onnx: Path, tmp_path: Path) -> None:
    bench_json = tmp_path / "bench.json"
    proc = _pytest(
        "-q",
        "-o",
        "addopts=",
        f"--weightpack-goldens={minilm_pack_onnx}",
        "--weightpack-devices=cpu",
        "--weightpack-rounds=5",
        f"--benchmark-json={bench_json}",
        "-rs",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    # onnx was packed: 1 parity + 2 latency (batch 1, 8); hf was not: skipped with the command to run
    # onnx only was packed: its parity test + 2 latency benchmarks pass; the recipe's other backends skip
    # with the command that would build them.
    assert "3 passed" in out and "failed" not in out and "--backends hf" in out, out[-2000:]
    data = json.loads(bench_json.read_text())
    assert data["machine_info"]["weightpack"]["env_key"]
    names = sorted(b["name"] for b in data["benchmarks"])
    assert names == ["test_latency[minilm-l6-onnx-cpu-bs1]", "test_latency[minilm-l6-onnx-cpu-bs8]"]
    info = data["benchmarks"][0]["extra_info"]
    assert info["environment"]["cpu_count"] and info["p99_ms"] >= info["p50_ms"] > 0


def test_devices_are_resolved_like_packs(tmp_path: Path) -> None:
    """--weightpack-devices goes through the run's settings, resolved once as pack's --devices are: a
    device that is no device is a usage error naming the accepted forms (each case failed on its own)."""
    proc = _pytest("-q", "-o", "addopts=", f"--weightpack-goldens={tmp_path}", "--weightpack-devices=gpu")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--weightpack-devices: unknown device 'gpu' (accepted: cpu, cuda, cuda:N)" in proc.stderr


def test_fanout_plan() -> None:
    """One pack per family with its variants and backends (the Ray run: tests/cluster/)."""
    runs = fanout.plan(["minilm", "mtcnn"])
    assert [r.family for r in runs] == ["minilm", "mtcnn"]
    assert runs[1].variants == ("pnet", "rnet", "onet") and "onnx" in runs[0].backends
    assert fanout.plan(["mtcnn"], variants=["pnet"], backends=["onnx"]) == [
        fanout.FamilyRun("mtcnn", ("pnet",), ("onnx",))
    ]
    assert fanout.plan(["minilm"], variants=["pnet"]) == []  # no asked variant: no pack


def test_fanout_pack_command(tmp_path: Path) -> None:
    run = fanout.FamilyRun("mtcnn", ("pnet", "rnet"), ("onnx",))
    argv = fanout.pack_argv(run, tmp_path, "10.0.0.1:6379", ["--no-latency"])
    assert argv[3:] == [
        "mtcnn", "--variants", "pnet,rnet", "--backends", "onnx", "--out", str(tmp_path / "mtcnn"),
        "--quiet", "--ray", "10.0.0.1:6379", "--no-latency",
    ]  # fmt: skip
    assert "--ray" not in fanout.pack_argv(run, tmp_path, None)
    assert fanout.pack_argv(run, tmp_path, "")[-1] == "--ray"  # $RAY_ADDRESS, else the local cluster
