"""Which of NVML's compute processes are this one. NVML reports host PIDs; in a container
``os.getpid()`` is a PID of the container's namespace, so comparing the two flagged our own process as
"another process on the GPU". :func:`classify_processes` is the decision, a pure function."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def uses_nvidia_device(pid: int) -> bool:
    """Whether ``pid`` is a process of *our* PID namespace with an NVIDIA device open. An NVML (host) PID
    seen from inside a container usually names no process here, or an unrelated one: both say False.
    Unreadable (another user's process): True, i.e. counted as another process, the cautious side."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}").startswith("/dev/nvidia"):
                return True
        except OSError:
            continue
    return False


def this_process_uses_gpu() -> bool:
    """True once this process holds a CUDA context (torch initialised CUDA, or TensorRT/onnxruntime-gpu
    are loaded and so will)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            return True
    except Exception:
        pass
    return any(m in sys.modules for m in ("tensorrt", "pycuda", "cupy"))


def classify_processes(
    processes: list[dict[str, Any]],
    my_pid: int,
    visible_gpu_user: Callable[[int], bool],
    i_use_gpu: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """``(others, own, note)``: the NVML compute processes that are *not* this one (as many as there
    are, for the warning), this process's entry when it can be told, and a note when that is inferred.

    Outside containers NVML's PIDs are ours and ``my_pid`` is in the list. Inside one NVML reports host
    PIDs: a PID that names a GPU-using process of our namespace is certainly another process; the rest
    are unattributed, and when this process uses the GPU one of them is it. With one unattributed, that
    one is ours; with ``n``, ``n - 1`` are others and which one is ours cannot be told (``own`` None)."""
    for p in processes:
        if p["pid"] == my_pid:
            return [q for q in processes if q["pid"] != my_pid], p, None
    confirmed = [p for p in processes if visible_gpu_user(p["pid"])]
    unattributed = [p for p in processes if not visible_gpu_user(p["pid"])]
    if not i_use_gpu or not unattributed:
        return confirmed + unattributed, None, None
    if len(unattributed) == 1:
        only = unattributed[0]
        return confirmed, only, f"pid {only['pid']} is taken as this process (NVML host PID, container)"
    return (
        confirmed + unattributed[1:],
        None,
        f"{len(unattributed)} NVML processes are not visible here (host PIDs, container; pids "
        f"{', '.join(str(p['pid']) for p in unattributed)}); one is this process, so "
        f"{len(unattributed) - 1} other(s)",
    )
