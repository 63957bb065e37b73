"""The environment a measurement depends on: one fingerprint for every use of it.

Two runs are comparable only when these match: the CPU (model, count, usable cores), Python and the OS, the
thread settings, GPUs (name and compute capability), driver, CUDA, cuDNN, the execution providers and
TensorRT runtime, and the versions of the runtime libraries, which are the ones the backends name in their
specs (``BackendSpec.version_libraries``: upgrading onnxruntime changes what an onnx package measures) plus
numpy and weightpack. Everything else in ``environment`` (clocks, temperatures, other processes, warnings)
is context, not identity.

The nightly plugin and ``pack compare`` file results under :func:`env_key`; ``pack`` keeps a package's
passed checks only while :func:`env_key` is unchanged (``packager.reuse``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

BASE_LIBRARIES = ("numpy", "weightpack")
"""Runtime libraries no backend names: the array library every check runs on, and weightpack itself."""


def runtime_libraries() -> tuple[str, ...]:
    """Every registered backend's ``version_libraries``, then :data:`BASE_LIBRARIES` (each once)."""
    from backends.registry import BACKENDS

    names = [lib for spec in BACKENDS.values() for lib in spec.version_libraries]
    return tuple(dict.fromkeys([*names, *BASE_LIBRARIES]))


def env_fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What a measurement depends on (see the module docstring), from a captured ``environment``."""
    cuda = env.get("cuda") or {}
    libraries = env.get("libraries") or {}
    threads = {k: v for k, v in (env.get("threads") or {}).items() if k != "source"}
    return {
        "machine": env.get("machine"),
        "platform": env.get("platform"),
        "python": env.get("python"),
        "cpu": env.get("cpu"),
        "cpu_count": env.get("cpu_count"),
        "cpu_affinity": env.get("cpu_affinity"),
        "torch_threads": env.get("torch_threads"),
        "torch_interop_threads": env.get("torch_interop_threads"),
        "threads": threads or None,
        "gpus": [f"{d.get('name')} (CC {d.get('compute_capability')})" for d in cuda.get("devices", [])],
        "driver_version": cuda.get("driver_version"),
        "cuda_version": cuda.get("cuda_version"),
        "cudnn_version": cuda.get("cudnn_version"),
        "onnxruntime_providers": env.get("onnxruntime_providers"),
        "tensorrt_version": env.get("tensorrt_version"),
        **{f"lib:{name}": libraries.get(name) for name in runtime_libraries()},
    }


def env_key(env: dict[str, Any]) -> str:
    """Short stable hash of :func:`env_fingerprint`: the folder name baselines are kept under."""
    payload = json.dumps(env_fingerprint(env), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def env_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``field: baseline -> current`` for every fingerprint field that differs (empty: comparable)."""
    a, b = env_fingerprint(baseline), env_fingerprint(current)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a) if a[k] != b.get(k)]
