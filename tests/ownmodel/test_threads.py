"""Issue 11, friction 8: thread control for torch and onnxruntime alike, recorded in the report, and
adaptive stopping of the latency harness (median CI within a target, or max_time_s)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.latency import LatencyConfig, measure
from bench.threads import ThreadSettings, apply_threads, default_threads
from packager.errors import RecipeError
from packager.recipes import load_recipe
from tests.ownmodel.helpers import ONET_PT, USER_MODEL, identity_onnx, onet_recipe, pack, write_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_apply_threads_sets_torch_and_returns_ort_options() -> None:
    import onnxruntime
    import torch

    before = torch.get_num_threads()
    try:
        settings = apply_threads(ThreadSettings(intra_op=1, inter_op=1))
        assert torch.get_num_threads() == 1
        options = onnxruntime.SessionOptions()
        settings.configure_ort(options)
        assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
        assert settings.to_dict()["intra_op"] == 1
    finally:
        torch.set_num_threads(before)


def test_threads_wait_for_torch_and_apply_on_its_import() -> None:
    """Before torch is imported, apply_threads does not import it (a fully reused run needs no torch); the
    environment records the settings it is handed, and importing torch applies them before anyone can use
    it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from bench.threads import ThreadSettings, apply_threads\n"
        "from bench import environment\n"
        "threads = apply_threads(ThreadSettings(intra_op=3, inter_op=2))\n"
        "env = environment.capture(threads)\n"
        "assert 'torch' not in sys.modules, 'capture imported torch'\n"
        "import torch\n"
        "print(env['torch_threads'], env['torch_interop_threads'], torch.get_num_threads(),"
        " torch.get_num_interop_threads())\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", "2", "3", "2"]


def test_default_is_pinned_and_documented() -> None:
    settings = default_threads()
    assert (settings.intra_op, settings.inter_op, settings.source) == (1, 1, "default")
    documented = (ROOT / "docs" / "measurement.md").read_text()
    assert "pinned default of **1 intra-op and 1 inter-op thread**" in documented


def test_bench_threads_in_recipe(tmp_path: Path) -> None:
    body = onet_recipe("/tmp/onet.pt", model=USER_MODEL).replace("[bench]\n", "[bench]\nthreads = 1\n")
    assert load_recipe(write_recipe(tmp_path, body) / "mine.toml").bench.threads == 1
    bad = body.replace("threads = 1", "threads = 0")
    with pytest.raises(RecipeError, match=r"bench.threads.*positive"):
        load_recipe(write_recipe(tmp_path, bad) / "mine.toml")


def test_onnxruntime_sessions_get_the_thread_settings(tmp_path: Path) -> None:
    """What a package's check passes to a model class (``ThreadSettings.model_kwargs()``) reaches the
    onnxruntime session's own options."""
    from backends.onnx.model import OnnxModel

    identity_onnx(tmp_path / "weights.onnx")
    model = OnnxModel.from_pretrained(tmp_path, device="cpu", **ThreadSettings(2, 1).model_kwargs())
    options = model.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


@pytest.mark.slow
@pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")
def test_threads_flag_reaches_torch_and_onnxruntime_and_the_report(tmp_path: Path) -> None:
    """--threads 2 (not the pinned default of 1, so a flag that is ignored fails this)."""
    backends = "[backends.torch]\n[backends.onnx]\n"
    body = onet_recipe(str(ONET_PT), model=USER_MODEL, backends=backends)
    run = pack(tmp_path, body, "--threads", "2", process=True)  # the process's own torch and onnxruntime
    assert run.rc == 0, run.stderr[-3000:]
    env = run.report["environment"]
    assert env["threads"]["intra_op"] == 2 and env["threads"]["source"] == "--threads"
    assert env["torch_threads"] == 2
    lat = run.report["latency"]
    assert {r["backend"] for r in lat} == {"torch", "onnx"}
    assert all(r["stopped_by"] in ("precision", "max_time", "min_time") for r in lat)


def test_adaptive_stopping_reaches_the_target_before_max_time() -> None:
    config = LatencyConfig(
        warmup_iters=2, warmup_s=0.0, min_iters=20, min_time_s=0.0, max_time_s=5.0, target_ci=0.05
    )
    result = measure(lambda _: time.sleep(0.001), [None], config)
    assert result.stopped_by == "precision"
    assert result.total_s < 5.0
    lo, hi = result.stats["p50_ci95_ms"]
    assert (hi - lo) / 2 / result.stats["p50_ms"] <= 0.05


def test_adaptive_stopping_reports_max_time_when_the_target_is_out_of_reach() -> None:
    rng = np.random.default_rng(0)
    config = LatencyConfig(
        warmup_iters=1, warmup_s=0.0, min_iters=5, min_time_s=0.0, max_time_s=0.3, target_ci=1e-9
    )
    result = measure(lambda _: time.sleep(float(rng.uniform(0, 0.002))), [None], config)
    assert result.stopped_by == "max_time"
    assert 0.3 <= result.total_s < 1.0


def test_without_a_target_min_time_decides() -> None:
    config = LatencyConfig(
        warmup_iters=1, warmup_s=0.0, min_iters=5, min_time_s=0.05, max_time_s=5.0, target_ci=None
    )
    assert measure(lambda _: None, [None], config).stopped_by == "min_time"
