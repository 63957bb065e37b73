"""Check the latency harness against timers it does not share code with, on the same callable.

Three measurements of one ``fn`` (a module's forward on inputs already on the device):

* the harness: :func:`bench.latency.measure` with the device synchronize and, on CUDA, its event timer;
* ``torch.utils.benchmark.Timer(...).blocked_autorange``: PyTorch's own benchmark timer (it synchronizes
  CUDA around each block), compared with the harness's host median;
* a bare CUDA-event loop (record, call, record, synchronize, ``elapsed_time``), compared with the
  harness's device median.

:func:`agreement` is the pure decision: each pair's ratio and whether it is within ``tolerance`` (3 %).
scripts/gpu_check.py gates on it on CUDA; on the CPU only the first pair exists and is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.latency import CudaEventTimer, LatencyConfig, measure

TOLERANCE = 0.03


def agreement(pairs: dict[str, tuple[float | None, float | None]], tolerance: float = TOLERANCE) -> dict:
    """``{name: (harness median, independent median)}`` -> per pair the ratio harness/independent and
    ``within`` (|ratio - 1| <= tolerance); ``passed`` when every pair with both figures is within."""
    rows = {}
    for name, (ours, theirs) in pairs.items():
        if ours is None or theirs is None or theirs <= 0:
            rows[name] = {"harness_ms": ours, "independent_ms": theirs, "ratio": None, "within": None}
            continue
        ratio = ours / theirs
        rows[name] = {
            "harness_ms": ours,
            "independent_ms": theirs,
            "ratio": ratio,
            "within": abs(ratio - 1.0) <= tolerance,
        }
    judged = [r["within"] for r in rows.values() if r["within"] is not None]
    return {"tolerance": tolerance, "pairs": rows, "passed": bool(judged) and all(judged)}


def compare_timers(
    fn: Callable[[], Any],
    device: str,
    *,
    iterations: int = 200,
    min_run_time_s: float = 1.0,
    warmup_iters: int = 20,
) -> dict[str, Any]:
    """Time ``fn`` with the harness, torch.utils.benchmark and (CUDA) a bare event loop; see module doc."""
    import torch
    import torch.utils.benchmark as tb

    cuda = device.startswith("cuda")
    dev = torch.device(device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    config = LatencyConfig(
        warmup_iters=warmup_iters,
        warmup_s=min(0.2, min_run_time_s),
        min_iters=iterations,
        min_time_s=min_run_time_s,
        max_time_s=30.0,
    )
    stream = torch.cuda.current_stream(dev) if cuda else None
    timer = CudaEventTimer(stream, "CUDA events on the current stream") if cuda else None
    ours = measure(lambda _: fn(), [None], config, sync, device_timer=timer)
    host_median = statistics.median(ours.samples_ms)
    device_median = statistics.median(ours.device_samples_ms) if ours.device_samples_ms else None

    # the same thread count as the harness ran with (Timer defaults to 1 thread)
    torch_timer = tb.Timer(
        stmt="fn(); sync()", globals={"fn": fn, "sync": sync}, num_threads=torch.get_num_threads()
    )
    blocked = torch_timer.blocked_autorange(min_run_time=min_run_time_s)
    torch_median_ms = float(blocked.median) * 1e3

    events_median = None
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iterations):
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
        events_median = statistics.median(times)
    result = agreement(
        {
            "host: harness vs torch.utils.benchmark": (host_median, torch_median_ms),
            "device: harness events vs bare CUDA-event loop": (device_median, events_median),
        }
    )
    result.update(
        {
            "device": device,
            "harness_iterations": len(ours.samples_ms),
            "torch_benchmark_runs": len(blocked.times),
            "torch_benchmark_number_per_run": blocked.number_per_run,
        }
    )
    return result
