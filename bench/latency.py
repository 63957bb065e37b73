"""Latency measurement that keeps every raw sample.

Warm-up runs until both a count and a duration are reached (JIT, allocator growth and caches settle);
steady state runs until both ``min_iters`` and ``min_time_s`` are met (capped by ``max_time_s``). Each
host sample is the wall time of one call plus the synchronize of the model's device, so queued device
work is counted. On CUDA a device timer (CUDA events recorded on the stream the model uses) gives the
device time of the same iterations as a second, separate figure. Statistics come from the pooled samples,
never from per-window summaries. The harness's own per-iteration cost is measured with the same timing
path and a no-op callable, and reported beside the numbers. See docs/measurement.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# CUDA streams and events live in bench.cuda_streams; re-exported here, where callers have always found them
from bench.cuda_streams import (  # noqa: F401
    CudaEventTimer,
    device_synchronize,
    model_stream,
    stage_before_start,
    uses_torch_stream,
)
from bench.yardstick import STABLE_COV, measure_yardstick  # STABLE_COV: trtexec's fixed 2.5 %

HOST_TIMER = "host wall clock (perf_counter_ns) around infer + synchronize"


@dataclass(frozen=True)
class LatencyConfig:
    warmup_iters: int = 10
    warmup_s: float = 0.2
    min_iters: int = 30
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    target_ci: float | None = None
    """Adaptive stopping: once ``min_iters``/``min_time_s`` are met, go on until the median's 95 % CI
    half-width is at most this fraction of the median (``stopped_by = "precision"``) or ``max_time_s`` runs
    out (``"max_time"``). ``None``: stop as soon as the minimums are met (``"min_time"``)."""


class DeviceTimer(Protocol):
    """Times device work of one iteration (CUDA events); ``elapsed_ms`` is read after the synchronize."""

    description: str

    def record_start(self) -> None: ...

    def record_end(self) -> None: ...

    def elapsed_ms(self) -> float: ...


@dataclass
class LatencyResult:
    """Raw samples in milliseconds plus the summary computed from them.

    ``samples_ms`` are host wall times; ``device_samples_ms`` the device times of the same iterations
    (``None`` where no device timer ran, e.g. on the CPU)."""

    samples_ms: list[float]
    warmup_iters: int
    total_s: float
    stats: dict[str, float] = field(default_factory=dict)
    device_samples_ms: list[float] | None = None
    warmup_s: float = 0.0
    harness_overhead_ns: float | None = None
    timer: str = HOST_TIMER
    device_timer: str | None = None
    stopped_by: str = "min_time"
    """``precision`` (the CI target was met), ``max_time`` (``max_time_s`` ran out first) or ``min_time``
    (no target: ``min_iters`` and ``min_time_s`` were met)."""
    target_ci: float | None = None
    gpu_conditions: dict[str, Any] | None = None
    """Clocks, throttling, temperature and device memory sampled during the timed loop (CUDA only)."""
    yardstick: dict[str, Any] | None = None
    """The machine's noise floor timed right after this row, in this process (:mod:`bench.yardstick`)."""

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = summarize(self.samples_ms)


def summarize(samples_ms: Sequence[float], batch_size: int = 1) -> dict[str, Any]:
    """p50/p90/p95/p99, mean, std, min, max, IQR, CoV, throughput and a 95 % CI of the median,
    all from the pooled samples."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no latency samples to summarize")
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    p = np.percentile(arr, [50, 90, 95, 99])
    q1, q3 = np.percentile(arr, [25, 75])
    cov = std / mean if mean > 0 else 0.0
    return {
        "p50_ms": float(p[0]),
        "p90_ms": float(p[1]),
        "p95_ms": float(p[2]),
        "p99_ms": float(p[3]),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
        "iqr_ms": float(q3 - q1),
        "cov": cov,
        "iterations": int(arr.size),
        "throughput_per_s": (1000.0 * batch_size / mean) if mean > 0 else math.inf,
        "p50_ci95_ms": median_ci(arr),
        "stable": bool(cov <= STABLE_COV),
    }


def median_ci(samples: Sequence[float], level: float = 0.95) -> list[float]:
    """Distribution-free confidence interval of the median from order statistics: the sorted samples at
    ranks ``n/2 -+ z*sqrt(n)/2`` (normal approximation of the binomial(n, 1/2) count below the median).
    Exact for any continuous distribution as n grows, deterministic, and O(n log n) even for 10^6 samples,
    unlike a bootstrap."""
    arr = np.sort(np.asarray(samples, dtype=np.float64))
    n = arr.size
    if n == 0:
        return [math.nan, math.nan]
    z = {0.9: 1.6449, 0.95: 1.96, 0.99: 2.5758}.get(level, 1.96)
    # 1-based ranks j = floor((n - z sqrt n) / 2), k = ceil(1 + (n + z sqrt n) / 2), clipped to the sample.
    j = math.floor((n - z * math.sqrt(n)) / 2)
    k = math.ceil(1 + (n + z * math.sqrt(n)) / 2)
    lo, hi = max(0, j - 1), min(n - 1, k - 1)
    return [float(arr[lo]), float(arr[hi])]


def validate_input_sets(input_sets: Sequence[Any]) -> int:
    """Refuse input sets that would time a degenerate case; return how many distinct sets there are.

    A set is rejected when every array in it is all zeros, or when any floating-point array is all zeros
    (kernels on zeros skip work, denormal paths, sparse shortcuts). Integer arrays such as
    ``token_type_ids`` may legitimately be zero when other arrays are not."""
    if not input_sets:
        raise ValueError("measure() needs at least one input set")
    fingerprints = set()
    for index, inputs in enumerate(input_sets):
        arrays = _arrays(inputs)
        if not arrays:
            fingerprints.add(repr(inputs))
            continue
        zero = {name: not np.any(a) for name, a in arrays.items()}
        if all(zero.values()):
            raise ValueError(f"input set {index} is all zeros; timing on zeros is not representative")
        for name, arr in arrays.items():
            if zero[name] and np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"input set {index}: floating-point input '{name}' is all zeros")
        fingerprints.add(tuple((n, a.shape, str(a.dtype), a.tobytes()) for n, a in sorted(arrays.items())))
    return len(fingerprints)


def _arrays(inputs: Any) -> dict[str, np.ndarray]:
    if isinstance(inputs, np.ndarray):
        return {"input": inputs}
    if isinstance(inputs, dict):
        return {str(k): np.asarray(v) for k, v in inputs.items() if isinstance(v, np.ndarray)}
    return {}


def measure(
    fn: Callable[[Any], Any],
    input_sets: Sequence[Any],
    config: LatencyConfig,
    synchronize: Callable[[], None] | None = None,
    *,
    device_timer: DeviceTimer | None = None,
    fetch: Callable[[Any], Any] | None = None,
) -> LatencyResult:
    """Time ``fn(inputs)``, rotating through ``input_sets``; ``synchronize`` runs inside each sample.

    With a ``device_timer`` the start event is recorded just before the host clock starts and the end
    event just after ``fn`` returns (before the synchronize), so both figures cover the same work.
    ``fetch`` (a model's copy of ``fn``'s outputs to the host) runs after the end event and inside the
    host sample: the host figure is what a caller waits for, the device figure the model's own work."""
    if not input_sets:
        raise ValueError("measure() needs at least one input set")
    if fetch is not None:
        run = fn

        def fn(inputs: Any) -> Any:  # the host path: run + fetch as one call
            return fetch(run(inputs))

    sync = synchronize or _noop
    clock = time.perf_counter_ns
    n_sets = len(input_sets)
    warm = 0
    warm_start = clock()
    warm_deadline = warm_start + int(config.warmup_s * 1e9)
    while warm < config.warmup_iters or clock() < warm_deadline:
        fn(input_sets[warm % n_sets])
        sync()
        warm += 1
    warm_s = (clock() - warm_start) / 1e9
    samples: list[int] = []
    device: list[float] | None = None
    start = clock()
    min_end = start + int(config.min_time_s * 1e9)
    hard_end = start + int(config.max_time_s * 1e9)
    min_iters = config.min_iters
    i = 0
    append = samples.append
    done = _precision_check(samples, config.target_ci)
    if device_timer is None:
        if synchronize is None:
            while True:
                inputs = input_sets[i % n_sets]
                t0 = clock()
                fn(inputs)
                t1 = clock()
                append(t1 - t0)
                i += 1
                if (i >= min_iters and t1 >= min_end and done(i)) or t1 >= hard_end:
                    break
        else:
            while True:
                inputs = input_sets[i % n_sets]
                t0 = clock()
                fn(inputs)
                sync()
                t1 = clock()
                append(t1 - t0)
                i += 1
                if (i >= min_iters and t1 >= min_end and done(i)) or t1 >= hard_end:
                    break
    else:
        device = []
        record_start, record_end, elapsed = (
            device_timer.record_start,
            device_timer.record_end,
            device_timer.elapsed_ms,
        )
        run_only = run if fetch is not None else fn
        fetch_out = fetch or _noop
        while True:
            inputs = input_sets[i % n_sets]
            record_start()
            t0 = clock()
            out = run_only(inputs)
            record_end()
            fetch_out(out)
            sync()
            t1 = clock()
            append(t1 - t0)
            device.append(elapsed())  # the end event is complete: the synchronize waited for it
            i += 1
            if (i >= min_iters and t1 >= min_end and done(i)) or t1 >= hard_end:
                break
    total = (clock() - start) / 1e9
    minimums_met = i >= min_iters and t1 >= min_end
    if not minimums_met:
        stopped_by = "max_time"
    elif config.target_ci is None:
        stopped_by = "min_time"
    else:
        stopped_by = "precision" if _within(samples, config.target_ci) else "max_time"
    return LatencyResult(
        stopped_by=stopped_by,
        target_ci=config.target_ci,
        samples_ms=[s / 1e6 for s in samples],
        warmup_iters=warm,
        total_s=total,
        device_samples_ms=device,
        warmup_s=warm_s,
        device_timer=getattr(device_timer, "description", None) if device_timer else None,
    )


def _noop(*_: Any) -> None:
    return None


def ci_half_width(samples: Sequence[float]) -> float:
    """Half-width of the median's 95 % CI relative to the median (0 when the median is 0)."""
    lo, hi = median_ci(samples)
    mid = float(np.median(np.asarray(samples, dtype=np.float64)))
    return (hi - lo) / 2 / mid if mid > 0 else 0.0


def _within(samples: Sequence[float], target: float) -> bool:
    return len(samples) >= 2 and ci_half_width(samples) <= target


def _precision_check(samples: list[int], target: float | None) -> Callable[[int], bool]:
    """``done(i)``: whether to stop at iteration ``i`` once the minimums are met. Without a target, always.
    With one, the CI is recomputed at geometrically spaced iterations (every 10 %, at least every 10), so the
    checks cost O(n log n) in all and nothing between them."""
    if target is None:
        return lambda _i: True
    next_check = [0]

    def done(i: int) -> bool:
        if i < next_check[0]:
            return False
        next_check[0] = max(i + 10, int(i * 1.1))
        return _within(samples, target)

    return done


def harness_overhead_ns(
    iterations: int = 20000,
    synchronize: Callable[[], None] | None = None,
    device_timer: DeviceTimer | None = None,
) -> float:
    """Median per-iteration cost of the timing loop itself (clock reads, the call, the synchronize and
    event records when given), measured on a no-op callable through the very same code path."""
    result = measure(
        _noop,
        [None],
        LatencyConfig(warmup_iters=100, warmup_s=0.0, min_iters=iterations, min_time_s=0.0, max_time_s=5.0),
        synchronize,
        device_timer=device_timer,
    )
    return float(np.median(result.samples_ms) * 1e6)


def timed_calls(model: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any] | None]:
    """``(run, fetch)`` of a model: its split ``run``/``fetch`` when it has both (device work, then the
    host copy), else ``infer`` (or ``model(**inputs)``) with no separate fetch."""
    cls = type(model)  # class attributes only: a wrapper that forwards via __getattr__ (a CPU-clock or
    # planted-slowdown wrapper) must be timed through its own infer, not its inner model's run/fetch
    if callable(getattr(cls, "run", None)) and callable(getattr(cls, "fetch", None)):
        return model.run, model.fetch
    return (model.infer if hasattr(model, "infer") else (lambda x: model(**x))), None


def measure_model(
    model: Any,
    device: str,
    input_sets: Sequence[Any],
    config: LatencyConfig,
    *,
    overhead: bool = True,
    baseline_used_bytes: int | None = None,
    yardstick: bool = True,
) -> LatencyResult:
    """Time a loaded model class on ``device``: host latency always, CUDA event time where a stream is
    known, the harness overhead through the same path; on CUDA a background sampler records the GPU's
    conditions and memory during the timed loop (``baseline_used_bytes``: device memory before the load).
    Then the yardstick (:mod:`bench.yardstick`), the machine's noise floor the row's ``stable`` is judged
    against, for about as many samples of about the row's median, within half the row's time (0.3-3 s)."""
    from bench.gpu_sampler import GpuSampler, reader_for

    fn, fetch = timed_calls(model)
    sync = device_synchronize(model, device)
    stream = model_stream(model, device)
    timer = CudaEventTimer(stream[0], f"CUDA events on {stream[1]}") if stream else None
    fn = stage_before_start(model, fn, timer)  # a model's input copy stays out of its device time
    read = reader_for(device)
    if read is None:
        result = measure(fn, input_sets, config, sync, device_timer=timer, fetch=fetch)
    else:
        with GpuSampler(read) as sampler:
            result = measure(fn, input_sets, config, sync, device_timer=timer, fetch=fetch)
        result.gpu_conditions = sampler.summary(baseline_used_bytes)
    if overhead:
        result.harness_overhead_ns = harness_overhead_ns(5000, sync, timer)
    if yardstick:
        budget = min(3.0, max(0.3, 0.5 * result.total_s))
        target = float(np.median(result.samples_ms))
        result.yardstick = measure_yardstick(target, len(result.samples_ms), budget, device)
    return result
