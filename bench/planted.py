"""A model class wrapper that plants a known slowdown or numerical drift, for calibrating ``pack compare``.

A regression test is only as good as its measured false-alarm and detection rates; those need changes
of a known size that go through the same harness as a real one. :class:`PlantedModel` wraps any loaded
model class: after each ``infer`` it does extra work worth ``slowdown`` times the call's own cost, as a
busy loop (CPU work, like a slower kernel, rather than a sleep whose wake-up a loaded machine inflates),
and ``drift`` is added to every floating-point output (a deterministic error growth).

The cost is measured on the process CPU clock for CPU packages: on a shared machine a call's wall time
includes time spent preempted, and ``slowdown`` times *that* would plant 1.3-1.4x instead of 1.2x (seen
in calibration). Spinning for ``slowdown`` times the call's CPU time adds exactly that fraction of CPU
time, and about that fraction of wall time, since the spin is preempted as often as the call was. GPU
packages (``clock="wall"``) spin on the wall clock: their CPU time is launch overhead, not their cost.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class PlantedModel:
    """``inner`` with ``slowdown`` (0.2 = each call costs 1.2x) and ``drift`` (added to outputs)."""

    def __init__(self, inner: Any, slowdown: float = 0.0, drift: float = 0.0, clock: str = "cpu") -> None:
        if slowdown < 0:
            raise ValueError(f"slowdown must be >= 0 (a fraction of each call's time), got {slowdown}")
        if clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {clock!r}")
        self.inner = inner
        self.slowdown = slowdown
        self.drift = drift
        self.clock = time.process_time if clock == "cpu" else time.perf_counter

    def infer(self, inputs: dict[str, np.ndarray]) -> Any:
        clock = self.clock
        start = clock()
        outputs = self.inner.infer(inputs) if hasattr(self.inner, "infer") else self.inner(**inputs)
        if self.slowdown:
            sync = getattr(self.inner, "synchronize", None)
            if sync is not None:
                sync()  # the added time is a fraction of the work, not of the launch
            now = clock()
            deadline = now + (now - start) * self.slowdown
            while clock() < deadline:
                _spin()
        if self.drift:
            outputs = _add(outputs, self.drift)
        return outputs

    def synchronize(self) -> None:
        sync = getattr(self.inner, "synchronize", None)
        if sync is not None:
            sync()

    def __getattr__(self, name: str) -> Any:  # stream, device, ... of the wrapped class
        return getattr(self.inner, name)


def _spin(n: int = 200) -> None:
    """A few microseconds of pure-Python work between clock reads: reading the CPU clock is a system
    call, and a loop of nothing but system calls also slowed the *next* inference (caches, kernel
    entries), planting 1.25x for a requested 1.2x."""
    for _ in range(n):
        pass


def _add(outputs: Any, delta: float) -> Any:
    if isinstance(outputs, dict):
        return {k: _add(v, delta) for k, v in outputs.items()}
    arr = np.asarray(outputs) if not hasattr(outputs, "detach") else outputs.detach().cpu().numpy()
    if np.issubdtype(arr.dtype, np.floating):
        return (arr + np.asarray(delta, dtype=arr.dtype)).astype(arr.dtype)
    return outputs
