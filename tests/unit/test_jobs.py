"""The default number of --jobs is a pure function of the machine and the model."""

from __future__ import annotations

import os
import pickle
import weakref
from pathlib import Path

import pytest

from backends import loaded
from backends.errors import MissingExtraError
from bench.threads import default_threads
from packager import jobs
from packager.jobs import (
    JOB_MEMORY_OVERHEAD,
    _RemoteError,
    _worker_init,
    choose_start_method,
    default_jobs,
)

GIB = 1 << 30


def test_default_jobs_follows_cpus_packages_and_memory() -> None:
    assert default_jobs(packages=4, cpus=2, available_bytes=20 * GIB, upstream_bytes=90 << 20) == 2
    assert default_jobs(packages=4, cpus=16, available_bytes=64 * GIB, upstream_bytes=90 << 20) == 4
    assert default_jobs(packages=1, cpus=16, available_bytes=64 * GIB, upstream_bytes=0) == 1
    # a 7 GB model: three copies per job, so 64 GiB hold three jobs however many CPUs there are
    assert default_jobs(packages=8, cpus=32, available_bytes=64 * GIB, upstream_bytes=7 * 10**9) == 3
    assert (
        default_jobs(packages=8, cpus=32, available_bytes=JOB_MEMORY_OVERHEAD // 2, upstream_bytes=10**9) == 1
    )
    assert default_jobs(packages=0, cpus=2, available_bytes=GIB, upstream_bytes=0) == 1


def test_a_worker_error_travels_back_as_its_own_class() -> None:
    """MissingExtraError's __init__ takes (module, extra): plain pickling could not rebuild it."""
    original = MissingExtraError("building a TensorRT engine", "gpu", "tensorrt")
    back = pickle.loads(pickle.dumps(_RemoteError.of(original))).rebuild()
    assert type(back) is MissingExtraError
    assert (str(back), back.exit_code, vars(back)) == (str(original), original.exit_code, vars(original))


@pytest.mark.parametrize(
    ("available", "cuda", "threads", "expected"),
    [
        (["fork", "spawn"], 0, 1, "fork"),
        (["fork", "spawn"], 1, 1, "spawn"),  # CUDA cannot be initialised again in a forked child
        (["fork", "spawn"], 0, 2, "spawn"),  # torch's OpenMP pool hangs in a forked child
        (["spawn"], 0, 1, "spawn"),  # Windows, macOS' default
    ],
)
def test_workers_are_forked_only_where_it_is_safe(available, cuda, threads, expected) -> None:
    assert choose_start_method(available, cuda, threads) == expected


class Stub:
    """A model class: ``from_pretrained`` gives an instance."""

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        return cls()


def test_a_forked_worker_never_destroys_the_models_it_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked worker that needs another reference than its parent's (``pack silero_vad --variants
    onnx,jit``: the jit task after the parent loaded the ONNX file's session) dropped the inherited one, and
    destroying a forked copy of an onnxruntime session waits for ever on its pool's condition variable (the
    run hung one time in three). What the worker runs first keeps the inherited models alive."""
    inherited = Stub()
    alive = weakref.ref(inherited)
    monkeypatch.setattr(loaded, "_LOADED", {("parent's", "", None, "{}"): inherited})
    monkeypatch.setattr(loaded, "_INHERITED", [])
    # what a worker runs first, with the models the fork copied (not its Ctrl-C and parent-death settings:
    # this is the test process)
    monkeypatch.setattr(jobs, "die_with_parent", lambda parent_pid: None)
    monkeypatch.setattr(jobs.signal, "signal", lambda *args: None)
    del inherited
    _worker_init(default_threads(), os.getppid())
    other = loaded.reference_model(f"{__name__}:Stub", tmp_path, "jit", {})
    assert isinstance(other, Stub) and alive() is not None, "the inherited model was destroyed"
