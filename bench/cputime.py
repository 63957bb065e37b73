"""CPU time per call beside wall time: the clock a shared machine disturbs least.

Wall time is what a caller waits for, and stays the report's latency. But when co-tenants preempt the
process, wall time grows while the work does not; the CPU time the process spends in ``infer``
(``time.process_time_ns``: every thread of the process, so intra-op worker threads count too) barely
moves. Google Benchmark reports both for this reason. :class:`CpuTimedModel` wraps a loaded model class
and records the CPU time of every call; ``pack runs`` stores the steady-state ones as ``cpu_samples_ms``
beside ``samples_ms``, and ``pack compare --clock cpu`` compares those. It only means something on the
CPU: a GPU package's CPU time is mostly launch overhead.
"""

from __future__ import annotations

import time
from typing import Any


class CpuTimedModel:
    """``inner`` whose ``infer`` calls are timed on the process CPU clock (``calls_ms``, in order)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls_ms: list[float] = []

    def infer(self, inputs: Any) -> Any:
        start = time.process_time_ns()
        out = self.inner.infer(inputs) if hasattr(self.inner, "infer") else self.inner(**inputs)
        sync = getattr(self.inner, "synchronize", None)
        if sync is not None:
            sync()
        self.calls_ms.append((time.process_time_ns() - start) / 1e6)
        return out

    def take(self, n: int) -> list[float]:
        """The last ``n`` calls (the steady state after the warm-up), then forget everything."""
        out = self.calls_ms[-n:] if n else []
        self.calls_ms = []
        return out

    def synchronize(self) -> None:
        sync = getattr(self.inner, "synchronize", None)
        if sync is not None:
            sync()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
