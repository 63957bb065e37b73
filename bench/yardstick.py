"""The machine's own noise floor, timed in the same process right after each latency row: ``stable`` is
decided against it.

A fixed threshold (trtexec's CoV <= 2.5 %) cannot tell a noisy package from a noisy machine: on the shared
2-core development VM a bare single-threaded numpy matmul, timed the same way, has a CoV of 5.5-6.1 %
idle, so no CPU row there can ever be "stable", however steady the package is. The yardstick is a fixed
piece of work (a 64x64 float64 matmul on the CPU, single-threaded at that size; a 256x256 float32
``torch.mm`` on a CUDA device) repeated so that one sample lasts about as long as the row's median call
(preemption and frequency changes hit a 1 ms call and a 50 ms call differently), and timed with the same
clock, for about as many samples as the row, inside a small time budget. Its CoV is what this machine does
to a perfectly steady workload at that moment.

A row is ``stable`` when its CoV is at most :data:`STABLE_FACTOR` times the yardstick's, or below the
absolute 2.5 % (a quiet machine keeps the fixed rule): "as steady as this machine allows". A row much
noisier than the yardstick has noise of its own (allocations, Python overhead, thread hand-offs, input
dependence) worth looking at; a machine whose yardstick is noisy is reported as such instead of blaming
every package on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

STABLE_COV = 0.025  # trtexec's fixed threshold, still "stable" on any machine
STABLE_FACTOR = 1.5  # a row within 1.5x the yardstick's CoV is as steady as this machine allows
MIN_SAMPLES = 20
MAX_SAMPLES = 200
MAX_SAMPLE_MS = 50.0  # longer rows get a 50 ms yardstick sample (and more of them within the budget)


def _kernel(device: str) -> tuple[Callable[[], Any], Callable[[], None], str]:
    """``(unit of work, synchronize, description)`` for a device."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        a = torch.randn(256, 256, device=dev)
        b = torch.randn(256, 256, device=dev)
        return (
            (lambda: torch.mm(a, b)),
            (lambda: torch.cuda.synchronize(dev)),
            (f"torch.mm 256x256 float32 on {device}"),
        )
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    return (lambda: a @ b), (lambda: None), "numpy matmul 64x64 float64 (single-threaded at this size)"


def measure_yardstick(
    target_ms: float, samples: int, budget_s: float = 1.0, device: str = "cpu"
) -> dict[str, Any]:
    """Time the yardstick: samples of about ``target_ms`` each (capped at :data:`MAX_SAMPLE_MS`), about
    ``samples`` of them (at least :data:`MIN_SAMPLES`, at most :data:`MAX_SAMPLES`) within ``budget_s``."""
    unit, sync, kernel = _kernel(device)
    clock = time.perf_counter_ns
    for _ in range(20):  # warm-up
        unit()
    sync()
    start, count = clock(), 0
    while count < 200 or clock() - start < 2_000_000:
        unit()
        count += 1
    sync()
    unit_ms = (clock() - start) / 1e6 / count
    reps = max(1, round(min(max(target_ms, unit_ms), MAX_SAMPLE_MS) / unit_ms))
    wanted = min(MAX_SAMPLES, max(MIN_SAMPLES, samples))
    deadline = clock() + int(budget_s * 1e9)
    out: list[float] = []
    while len(out) < wanted and (len(out) < MIN_SAMPLES or clock() < deadline):
        t0 = clock()
        for _ in range(reps):
            unit()
        sync()
        out.append((clock() - t0) / 1e6)
    arr = np.asarray(out)
    return {
        "kernel": kernel,
        "reps": reps,
        "p50_ms": float(np.median(arr)),
        "cov": float(arr.std(ddof=1) / arr.mean()) if arr.size > 1 and arr.mean() > 0 else 0.0,
        "iterations": int(arr.size),
        "samples_ms": [round(float(s), 6) for s in arr],
    }


def stability(cov: float, yardstick: dict[str, Any] | None) -> dict[str, Any]:
    """The row's ``stable`` verdict against the same-run yardstick (the fixed 2.5 % without one)."""
    if not yardstick:
        return {"stable": bool(cov <= STABLE_COV), "stability": f"CoV {cov:.1%} vs fixed {STABLE_COV:.1%}"}
    floor = float(yardstick["cov"])
    ratio = cov / floor if floor > 0 else float("inf")
    stable = cov <= STABLE_COV or cov <= STABLE_FACTOR * floor
    if stable:
        text = f"as steady as the machine: CoV {cov:.1%}, yardstick {floor:.1%} ({ratio:.1f}x)"
    else:
        text = f"noisier than the machine: CoV {cov:.1%}, yardstick {floor:.1%} ({ratio:.1f}x)"
    return {"stable": bool(stable), "stability": text, "cov_vs_yardstick": ratio, "yardstick_cov": floor}
