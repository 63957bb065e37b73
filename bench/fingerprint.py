"""The environment a latency number depends on, and the key baselines are filed under.

Two runs are comparable only when these match: CPU model and count, torch threads, GPUs (name and compute
capability), driver, CUDA, cuDNN and the runtime libraries. Everything else in ``environment`` (clocks,
temperatures, other processes) is context, not identity. Kept in ``bench`` because the nightly plugin and
``pack compare`` both file results under :func:`env_key`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

RUNTIME_LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy", "transformers")


def env_fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What a latency number depends on: CPU model/count, GPU names/CC, driver, CUDA, cuDNN, runtimes."""
    cuda = env.get("cuda") or {}
    libraries = env.get("libraries") or {}
    return {
        "machine": env.get("machine"),
        "cpu": env.get("cpu"),
        "cpu_count": env.get("cpu_count"),
        "torch_threads": env.get("torch_threads"),
        "gpus": [f"{d.get('name')} (CC {d.get('compute_capability')})" for d in cuda.get("devices", [])],
        "driver_version": cuda.get("driver_version"),
        "cuda_version": cuda.get("cuda_version"),
        "cudnn_version": cuda.get("cudnn_version"),
        **{f"lib:{name}": libraries.get(name) for name in RUNTIME_LIBRARIES},
    }


def env_key(env: dict[str, Any]) -> str:
    """Short stable hash of :func:`env_fingerprint`: the folder name baselines are kept under."""
    payload = json.dumps(env_fingerprint(env), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def env_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: baseline -> current`` for every fingerprint field that differs (empty: comparable)."""
    a, b = env_fingerprint(baseline), env_fingerprint(current)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a) if a[k] != b.get(k)]
