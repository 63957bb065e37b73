"""Issue 21, "one check": ``pack``'s verify step, the nightly suite, ``pack verify-remote`` and compare's
measure step open, check and time a package through the same :class:`packager.package_check.PackageCheck`,
so on one package they give identical parity verdicts (the same max_abs per output and case) and latency
rows measured the same way (the same input sets, the same harness fields).

Run on two cheap built-in packages, each packed once per session: MTCNN's O-net as ONNX (a CNN timed at
batch 1 and 16), and Silero VAD as ONNX (recurrent: checked over its 8-call sequence, state included, and
a second sample proving the batch axis)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from packager import cli
from tests.hermetic import child_env

ROOT = Path(__file__).resolve().parents[2]
GS = "gs://weightpack-test/rf-platform-models"
PACKAGES = {
    "onet": ("onet_pack_onnx", "mtcnn", "onet", "mtcnn/onet"),
    "vad": ("vad_pack_onnx", "silero_vad", "onnx", "silero-vad/onnx"),
}


def _env() -> dict[str, str]:
    return child_env()


def _plugin_args() -> list[str]:
    from importlib.metadata import entry_points

    installed = any(ep.name == "weightpack" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "packager.nightly.plugin"]


def parity_rows(rows: list[dict]) -> dict[tuple[str, str | None], tuple[float, bool]]:
    return {(r["output"], r.get("input_shape")): (r["max_abs"], r["passed"]) for r in rows}


def latency_rows(rows: list[dict]) -> dict[tuple[int, str | None], dict]:
    keep = ("inputs_digest", "input_sets", "timer", "device_timer", "target_ci")
    return {(r["batch_size"], r.get("input_shape")): {k: r[k] for k in keep} for r in rows}


def run_nightly(out: Path, tmp: Path) -> tuple[dict, dict, list[dict]]:
    """The nightly plugin on ``out``: (junit properties per test, outcome per test, benchmark rows)."""
    junit, bench = tmp / "junit.xml", tmp / "bench.json"
    cmd = [
        sys.executable, "-m", "pytest", *_plugin_args(), "-p", "no:cacheprovider", "-q", "-o", "addopts=",
        "-o", "junit_family=xunit1", f"--junitxml={junit}", f"--benchmark-json={bench}",
        f"--weightpack-goldens={out}", "--weightpack-devices=cpu", "--weightpack-rounds=5",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    props, outcome = {}, {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        props[name] = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome[name] = (
            "skipped"
            if case.find("skipped") is not None
            else (
                "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
            )
        )
    return props, outcome, json.loads(bench.read_text())["benchmarks"]


def run_compare(out: Path, variant: str, target: Path, target_ci: float | None) -> dict:
    cmd = [sys.executable, "-m", "packager.compare.measure", str(out), "--variant", variant, "--backend",
           "onnx", "--device", "cpu", "--out", str(target)]  # fmt: skip
    if target_ci:
        cmd += ["--target-ci", str(target_ci)]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(target.read_text())


def run_verify_remote(out: Path, family: str, variant: str, model_id: str) -> dict:
    """Upload and register the (already verified) package on loopback, then verify-remote --json."""
    argv = [family, "--variants", variant, "--backends", "onnx", "--out", str(out), "--quiet"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = cli.main([*argv, "--upload", GS, "--register", "--execute"])
    assert code == 0, buffer.getvalue()[-3000:]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(
            ["verify-remote", model_id, "--env", "staging", "--out", str(out), "--json", "--consumer", "skip"]
        )
    text = buffer.getvalue()
    assert code == 0, text[-3000:]
    return json.loads(text[text.index("{") :])


@pytest.mark.slow  # the nightly's entry is a pytest child process on real weights
@pytest.mark.parametrize("which", sorted(PACKAGES))
def test_four_entries_give_one_verdict_and_comparable_latency(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, registry_server: object
) -> None:
    fixture, family, variant, model_id = PACKAGES[which]
    out = Path(shutil.copytree(request.getfixturevalue(fixture), tmp_path / "out", symlinks=True))
    report = json.loads((out / "report.json").read_text())
    recipe_ci = report["latency"][0]["target_ci"]

    # 1. pack (its report), 2. compare's measure step, 3. the nightly, 4. verify-remote
    packed = parity_rows(report["parity"])
    run = run_compare(out, variant, tmp_path / "run.json", recipe_ci)
    props, outcome, benchmarks = run_nightly(out, tmp_path)
    remote = run_verify_remote(out, family, variant, model_id)

    assert packed and all(passed for _, passed in packed.values())
    assert parity_rows(run["parity"]) == packed
    [package] = remote["packages"]
    assert package["passed"] and parity_rows(package["parity"]) == packed
    parity_test = f"test_parity[{family}-{variant}-onnx-cpu]"
    assert outcome[parity_test] == "passed"
    nightly = {
        k.removesuffix(".max_abs"): float(v) for k, v in props[parity_test].items() if k.endswith(".max_abs")
    }
    as_names = {(f"{o} at {s}" if s else o): m for (o, s), (m, _) in packed.items()}
    assert nightly == as_names
    steps = {k: int(v) for k, v in props[parity_test].items() if k.startswith("steps")}
    expected_steps = 8 if which == "vad" else 1  # the recurrent model: its whole sequence, from the golden
    assert steps["steps"] == expected_steps

    # latency: the same rows, timed on the same input sets, by the same harness
    timed = latency_rows(report["latency"])
    assert timed and all(row["inputs_digest"] for row in timed.values())
    assert latency_rows(run["latency"]) == timed
    rows = {
        (b["extra_info"]["batch_size"], b["extra_info"]["input_shape"]): b["extra_info"] for b in benchmarks
    }
    assert {k: (v["inputs_digest"], v["input_sets"]) for k, v in rows.items()} == {
        k: (v["inputs_digest"], v["input_sets"]) for k, v in timed.items()
    }
    assert "latency" not in package  # verify-remote checks; it does not time
