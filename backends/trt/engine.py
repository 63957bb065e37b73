"""Deserialize an engine plan with the typed errors the TensorRT API leaves to the caller: its Python
bindings return ``None`` (they do not raise) when a runtime cannot be made, ``Runtime.load_runtime`` cannot
load a lean runtime library, or ``deserialize_cuda_engine`` rejects the plan; used as is, the ``None`` then
failed later as ``AttributeError: 'NoneType' object has no attribute ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.errors import ModelLoadError


def deserialize(
    trt: Any,
    plan: bytes,
    *,
    engine: Path,
    host_code_allowed: bool,
    lean_runtime_path: str | None = None,
) -> Any:
    """The ``ICudaEngine`` of ``plan`` (the bytes of ``engine``): a Runtime, the building version's lean
    runtime loaded into it when ``lean_runtime_path`` is given, host code allowed as decided by
    :func:`backends.trt.compat.host_code_setting`. ModelLoadError names the step that returned None."""
    version = getattr(trt, "__version__", "?")
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if runtime is None:
        raise ModelLoadError(f"TensorRT {version} could not create a runtime to load {engine} (see its log)")
    if lean_runtime_path:
        lean = runtime.load_runtime(str(lean_runtime_path))
        if lean is None:
            raise ModelLoadError(
                f"TensorRT {version} could not load the lean runtime {lean_runtime_path} for {engine}: pass "
                "lean_runtime_path= the libnvinfer_lean.so of the TensorRT version that built the engine"
            )
        runtime = lean
    runtime.engine_host_code_allowed = host_code_allowed
    loaded = runtime.deserialize_cuda_engine(plan)
    if loaded is None:
        raise ModelLoadError(
            f"TensorRT {version} could not deserialize {engine} (see the TensorRT log above)"
        )
    return loaded


def execution_context(engine: Any, path: Path) -> Any:
    """``engine.create_execution_context()``, which returns None when the device memory for the engine's
    activations cannot be allocated."""
    context = engine.create_execution_context()
    if context is None:
        raise ModelLoadError(
            f"TensorRT could not create an execution context for {path} (device memory for its activations; "
            "see the TensorRT log)"
        )
    return context
