"""A model class wrapper that plants a known slowdown or numerical drift, for calibrating ``pack compare``.

A regression test is only as good as its measured false-alarm and detection rates; those need changes
of a known size that go through the same harness as a real one. :class:`PlantedModel` wraps any loaded
model class: each ``infer`` is timed and followed by a busy wait of ``slowdown`` times its own duration
(CPU work, like a slower kernel, rather than a sleep whose wake-up latency a loaded machine inflates), and
``drift`` is added to every floating-point output (a deterministic error growth).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class PlantedModel:
    """``inner`` with ``slowdown`` (0.2 = each call takes 1.2x as long) and ``drift`` (added to outputs)."""

    def __init__(self, inner: Any, slowdown: float = 0.0, drift: float = 0.0) -> None:
        if slowdown < 0:
            raise ValueError(f"slowdown must be >= 0 (a fraction of each call's time), got {slowdown}")
        self.inner = inner
        self.slowdown = slowdown
        self.drift = drift

    def infer(self, inputs: dict[str, np.ndarray]) -> Any:
        start = time.perf_counter()
        outputs = self.inner.infer(inputs) if hasattr(self.inner, "infer") else self.inner(**inputs)
        if self.slowdown:
            sync = getattr(self.inner, "synchronize", None)
            if sync is not None:
                sync()  # the added time is a fraction of the work, not of the launch
            deadline = time.perf_counter() + (time.perf_counter() - start) * self.slowdown
            while time.perf_counter() < deadline:
                pass
        if self.drift:
            outputs = _add(outputs, self.drift)
        return outputs

    def synchronize(self) -> None:
        sync = getattr(self.inner, "synchronize", None)
        if sync is not None:
            sync()

    def __getattr__(self, name: str) -> Any:  # stream, device, ... of the wrapped class
        return getattr(self.inner, name)


def _add(outputs: Any, delta: float) -> Any:
    if isinstance(outputs, dict):
        return {k: _add(v, delta) for k, v in outputs.items()}
    arr = np.asarray(outputs) if not hasattr(outputs, "detach") else outputs.detach().cpu().numpy()
    if np.issubdtype(arr.dtype, np.floating):
        return (arr + np.asarray(delta, dtype=arr.dtype)).astype(arr.dtype)
    return outputs
