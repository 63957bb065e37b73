"""What the GPU was doing *while* it was timed: a light background sampler of clocks, throttle reasons,
temperature and device memory, and the marking of a latency row measured while throttled.

Reading NVML only before and after a run sees an idle GPU: throttling during the measurement went
unnoticed and "no warning" misled. :class:`GpuSampler` reads every ``interval_s`` (50 ms: an NVML query
costs tens of microseconds, far below what it could disturb) in a daemon thread for as long as the timed
loop runs; :func:`summarize_samples` is the pure decision over the samples (throttled or not, clock
range, peak device memory above the baseline taken before the model was loaded).

Device memory comes from the device, not from torch's caching allocator, so onnxruntime's arena and
TensorRT's activation memory count too: the device's used memory from ``cudaMemGetInfo``
(``torch.cuda.mem_get_info``), its peak and its rise above the baseline, and beside it this process's own
NVML entry when it can be identified (:func:`bench.gpu_processes.classify_processes`), under its own name.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.environment import BENIGN_THROTTLE, decode_throttle


@dataclass(frozen=True)
class GpuSample:
    """One reading; a field is ``None`` where the GPU, driver or library cannot say."""

    t_s: float
    sm_mhz: int | None = None
    throttle_mask: int | None = None
    temperature_c: int | None = None
    device_used_bytes: int | None = None
    process_used_bytes: int | None = None


def summarize_samples(samples: Sequence[GpuSample], baseline_used_bytes: int | None = None) -> dict[str, Any]:
    """Conditions over a timed run: ``throttled`` when any sample had a throttle reason other than idle /
    application clocks (power cap, thermal, hardware slowdown), with the reasons and how many samples;
    SM clock min/max, peak temperature, and device memory as two different quantities under two names:

    * ``memory_process_peak_bytes``: the peak of this process's own NVML entry, an absolute figure that
      includes its CUDA context (hundreds of MiB before any tensor), when the entry can be told;
    * ``memory_device_peak_bytes`` and ``memory_device_peak_delta_bytes``: the peak of the whole device's
      used memory (``cudaMemGetInfo``/NVML), and that peak minus ``baseline_used_bytes`` (the reading
      before the model was loaded), i.e. what loading and running it added, whoever allocated it.

    Main reported the process's absolute usage as the "delta" when its entry was found, and peak minus
    baseline otherwise, under one name."""
    reasons: dict[str, int] = {}
    for s in samples:
        if s.throttle_mask:
            for name in decode_throttle(s.throttle_mask):
                if name not in BENIGN_THROTTLE:
                    reasons[name] = reasons.get(name, 0) + 1

    def values(attr: str) -> list[int]:
        return [getattr(s, attr) for s in samples if getattr(s, attr) is not None]

    clocks, temps = values("sm_mhz"), values("temperature_c")
    used, own = values("device_used_bytes"), values("process_used_bytes")
    device_peak = max(used) if used else None
    return {
        "samples": len(samples),
        "throttled": bool(reasons),
        "throttle_reasons": sorted(reasons),
        "throttled_samples": max(reasons.values()) if reasons else 0,
        "sm_mhz_min": min(clocks) if clocks else None,
        "sm_mhz_max": max(clocks) if clocks else None,
        "temperature_c_max": max(temps) if temps else None,
        "memory_process_peak_bytes": max(own) if own else None,
        "memory_device_peak_bytes": device_peak,
        "memory_device_peak_delta_bytes": (
            max(0, device_peak - baseline_used_bytes)
            if device_peak is not None and baseline_used_bytes is not None
            else None
        ),
    }


class GpuSampler:
    """``with GpuSampler(read) as sampler: <timed loop>`` then ``sampler.summary(baseline)``.

    ``read`` returns one :class:`GpuSample` (see :func:`reader_for`); a reading that raises is skipped.
    One sample is always taken at start and at stop, so even a run shorter than the interval has two."""

    def __init__(self, read: Callable[[], GpuSample], interval_s: float = 0.05) -> None:
        self.read = read
        self.interval_s = interval_s
        self.samples: list[GpuSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="weightpack-gpu-sampler", daemon=True)

    def _take(self) -> None:
        with contextlib.suppress(Exception):  # a refused reading: conditions are facts, never failures
            self.samples.append(self.read())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._take()

    def __enter__(self) -> GpuSampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()

    def summary(self, baseline_used_bytes: int | None = None) -> dict[str, Any]:
        return summarize_samples(self.samples, baseline_used_bytes)


def reader_for(device: str) -> Callable[[], GpuSample] | None:
    """A reading function for CUDA ``device`` (NVML where nvidia-ml-py and a driver answer, device memory
    from torch otherwise); ``None`` on the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    from bench import environment

    dev = torch.device(device)
    handle = environment.nvml_handle_for(dev.index or 0)
    pynvml = environment.nvml_module() if handle is not None else None
    start = time.perf_counter()

    def read() -> GpuSample:
        free, total = torch.cuda.mem_get_info(dev)
        sample = {"t_s": time.perf_counter() - start, "device_used_bytes": int(total - free)}
        if pynvml is not None:
            sample.update(environment.nvml_conditions(pynvml, handle))
        return GpuSample(**sample)

    return read


def as_dicts(samples: Sequence[GpuSample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
