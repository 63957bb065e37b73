"""``pack --jobs N``: exports and zips of several (variant, backend) packages in parallel processes.

Exports are independent of each other once the reference outputs exist, and each is mostly one thread of
torch or Python (threads are pinned per process, see :mod:`bench.threads`), so on a machine with spare
cores they overlap well. Verification is not done here: the pipeline runs it after every build finished,
one package at a time with nothing else running, so its timings are not disturbed.

Workers are forked where no CUDA device is present and torch runs one intra-op thread (the pinned
default, see :mod:`bench.threads`): they start with torch, transformers and the loaded reference already in
memory (a spawned worker spends seconds importing them again, which on a small machine costs more than the
exports it runs). Otherwise they are spawned: CUDA cannot be initialised again in a forked child, and
torch's OpenMP thread pool hangs in one (:func:`choose_start_method`). The pool is started before any
progress display, so no thread of ours is running at the fork. Each worker builds several
packages in turn; a package already built from the same inputs is found reused in the parent without a
worker. With ``--jobs 1`` everything runs in this process, as before.

No worker outlives the run: each arms a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``)
and watches its parent's pid besides, so a ``kill -9`` of pack (an OOM killer, a user) takes the workers
with it instead of leaving them to write zips into a folder whose lock is gone. Workers ignore SIGINT (a
terminal's Ctrl-C reaches the whole process group): the parent handles it and kills them. Their pids and
start times go into the output folder's lock stamp (:func:`packager.outdir.record_processes`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Tensors
from backends.loaded import reference_model
from packager import archive, sources
from packager.build import PackageBuild, build_package, reused_build
from packager.errors import EXIT_ENVIRONMENT, WeightpackError, as_environment_error
from packager.hashing import usable_cpus
from packager.recipes import Recipe
from packager.ui import UI

JOB_MEMORY_OVERHEAD = 768 << 20
"""Interpreter, torch and exporter working memory of one job on top of its model (measured on MiniLM:
about 700 MB peak for a 90 MB model)."""


@dataclass
class BuildTask:
    """One (variant, backend) package to export and zip; everything a worker process needs."""

    recipe: Recipe
    variant: str
    backend: str
    fetched: sources.FetchedSource
    inputs: Tensors
    reference_class: str
    out_dir: Path
    reference_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    """The run's build device (``backends.device.export_device``)."""
    limits: archive.Limits = archive.DEFAULT_LIMITS
    """The run's archive limits (a zip kept from an earlier run is read within them)."""


class BuildFailed(WeightpackError):
    """A worker process that died before returning its package (killed, out of memory); fails that
    package, not the run: the machine's doing, not the input's (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


@dataclass
class _RemoteError:
    """An error raised in a worker, carried back as class, args and attributes: error classes whose
    ``__init__`` takes other arguments than their message do not survive plain pickling."""

    module: str
    qualname: str
    args: tuple
    state: dict[str, Any]

    @classmethod
    def of(cls, exc: BaseException) -> _RemoteError:
        return cls(type(exc).__module__, type(exc).__qualname__, exc.args, dict(vars(exc)))

    def rebuild(self) -> WeightpackError:
        import importlib

        kind = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            kind = getattr(kind, part)
        exc = kind.__new__(kind)  # type: ignore[call-overload]
        BaseException.__init__(exc, *self.args)
        exc.__dict__.update(self.state)
        return exc


def default_jobs(packages: int, cpus: int, available_bytes: int, upstream_bytes: int) -> int:
    """What suits the machine: one job per CPU, no more jobs than packages, and only as many as memory
    holds (each job loads the upstream model about three times over: weights, module, exported graph)."""
    per_job = 3 * upstream_bytes + JOB_MEMORY_OVERHEAD
    by_memory = max(1, available_bytes // per_job)
    return max(1, min(packages, cpus, by_memory))


def upstream_bytes(fetched: sources.FetchedSource) -> int:
    """Size of a variant's upstream files, from its provenance (what each job loads)."""
    return sum(int(f.get("size") or 0) for f in fetched.provenance.get("files") or [])


def machine_default_jobs(packages: int, upstream_bytes: int) -> int:
    import psutil

    return default_jobs(packages, usable_cpus(), psutil.virtual_memory().available, upstream_bytes)


def choose_start_method(available: Sequence[str], cuda_devices: int, intra_op_threads: int) -> str:
    """``fork`` where it is safe, else ``spawn``. Forked workers inherit the imports and the loaded
    reference, but a fork is unsafe when CUDA is present (it cannot be initialised again in a forked
    child) or torch runs more than one intra-op thread: GNU OpenMP, torch's CPU thread pool, hangs in a
    forked child once the parent has run a parallel region (``pack --threads 2`` deadlocked the first
    export's tensor copy)."""
    if "fork" in available and cuda_devices == 0 and intra_op_threads <= 1:
        return "fork"
    return "spawn"


def start_method(threads: Any) -> str:
    """:func:`choose_start_method` for this machine and the run's thread settings."""
    from backends.device import cuda_device_count

    return choose_start_method(
        multiprocessing.get_all_start_methods(), cuda_device_count(), getattr(threads, "intra_op", 1)
    )


def _build(task: BuildTask, ui: UI) -> PackageBuild:
    return build_package(
        task.recipe,
        task.variant,
        task.backend,
        task.fetched,
        task.inputs,
        task.reference_class,
        task.out_dir,
        ui,
        task.reference_kwargs,
        device=task.device,
        limits=task.limits,
    )


PR_SET_PDEATHSIG = 1
WATCH_PARENT_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does: the kernel's parent-death signal where there is
    one (Linux), and a thread that watches the parent's pid everywhere (and covers the moment before the
    signal was armed: a parent already gone is noticed at once)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_PARENT_S)
        os._exit(1)  # orphaned: the run is over; its temporaries are swept by the next one

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="weightpack-parent-watch", daemon=True).start()


def _worker_init(threads: Any, parent_pid: int) -> None:
    from backends.loaded import keep_inherited
    from bench.threads import apply_threads

    keep_inherited()  # a forked worker must never destroy the parent's loaded models (a spawned one has none)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the workers
    die_with_parent(parent_pid)
    apply_threads(threads)


def _worker(task: BuildTask) -> PackageBuild | _RemoteError:
    """Runs in a worker: the build, or the weightpack error it raised (what the pipeline records; anything
    else stops the run, as it does in-process)."""
    try:
        return _build(task, UI())
    except WeightpackError as exc:
        return _RemoteError.of(as_environment_error(exc))  # the cause does not travel back


def run_builds(
    tasks: list[BuildTask], jobs: int, ui: UI, threads: Any
) -> tuple[list[PackageBuild | WeightpackError], int]:
    """Build every task: ``(results in the order of tasks, number of jobs that ran)``. ``jobs`` > 1 uses up
    to that many processes for the packages that are not reused. A weightpack error is returned in its
    task's place, not raised, so the other packages go on."""
    results: list[PackageBuild | WeightpackError | None] = [None] * len(tasks)
    todo: list[int] = []
    for i, task in enumerate(tasks):
        found = reused_build(
            task.recipe,
            task.variant,
            task.backend,
            task.fetched,
            task.out_dir,
            task.reference_kwargs,
            task.device,
            limits=task.limits,
        )
        if found is not None:
            ui.info(f"  reusing {found.zip_result.zip_path.name} (inputs unchanged)")
            results[i] = found
        else:
            todo.append(i)
    if jobs <= 1 or len(todo) <= 1:
        for i in todo:
            try:
                results[i] = _build(tasks[i], ui)
            except WeightpackError as exc:
                results[i] = as_environment_error(exc)
        return results, 1  # type: ignore[return-value]
    workers = min(jobs, len(todo))
    label = ", ".join(f"{tasks[i].variant}/{tasks[i].backend}" for i in todo)
    context = multiprocessing.get_context(start_method(threads))
    if context.get_start_method() == "fork":  # forked workers inherit the loaded reference
        first = tasks[todo[0]]
        with contextlib.suppress(WeightpackError):  # each worker meets the same error and records it
            reference_model(first.reference_class, first.fetched.path, first.variant, first.reference_kwargs)
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(threads, os.getpid())
    )
    try:
        futures = {pool.submit(_worker, tasks[i]): i for i in todo}  # workers start here, before the UI
        from packager.outdir import record_processes

        record_processes(tasks[0].out_dir, list(getattr(pool, "_processes", {}) or {}))
        with ui.stage(f"export + zip {label} in {workers} parallel jobs ({context.get_start_method()})"):
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                try:
                    result = future.result()
                    results[i] = result.rebuild() if isinstance(result, _RemoteError) else result
                except concurrent.futures.process.BrokenProcessPool as exc:
                    results[i] = BuildFailed(f"the build process died: {exc}")
    except BaseException:  # Ctrl-C or an error: the workers' builds are not waited for
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results, workers  # type: ignore[return-value]
