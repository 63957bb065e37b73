"""What one Ray task does on its node: build (or reuse) one package and verify it on the node's devices,
with the local pipeline's own functions (``build_package``, and ``verify_on_device`` through the package's
one :class:`~packager.package_check.PackageCheck`, built from the variant's golden the driver ships); it
returns values and writes nothing the driver owns.

The task is a Ray streaming generator: it first yields :class:`Started` (the driver then knows it left
the queue, and on which node), then one :class:`Outcome`. Everything happens in an owned scratch folder
under the node's cache (``$WEIGHTPACK_CACHE/cluster/scratch``), named with the worker's pid, removed when
the task ends and swept by the next task on that node when a kill left it behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packager import __version__, atomic, manifest, reuse
from packager.build import PackageBuild
from packager.cluster.plan import device_label
from packager.cluster.targets import ClusterError
from packager.errors import WeightpackError, WriteError
from packager.recipes import Recipe
from packager.settings import RunSettings
from packager.ui import UI
from packager.verify import Verification


@dataclass(frozen=True)
class ShippedPackage:
    """The driver's zip and manifest of this package (from an earlier run, or built for another target):
    the task reuses it when its build key still matches here, instead of building it again."""

    zip_name: str
    zip_ref: list[Any]
    """``[ObjectRef]`` of the zip's bytes, in a list so Ray does not fetch it before the task asks."""
    manifest: bytes


@dataclass(frozen=True)
class PackageTask:
    """One package for one target: everything the task needs, nothing it must read from the driver's disk."""

    recipe: Recipe
    variant: str
    backend: str
    target: str | None
    provenance: dict[str, Any]
    upstream: list[tuple[str, Any]]
    """``(relative path, ObjectRef of its bytes)`` of the variant's upstream files (see :mod:`.upstream`)."""
    golden: tuple[str, bytes, bytes | None]
    """The variant's golden (``packager.goldens``): its file name, its bytes and the record beside it (the
    noise floor); the package is checked on what it holds, as everywhere."""
    reference_class: str
    reference_kwargs: dict[str, Any]
    reference_key: str
    settings: RunSettings
    """The run's settings, its devices as given (none: each node's own, cpu plus cuda:0 where it has a
    GPU), resolved on the node (:meth:`RunSettings.here`)."""
    shipped: ShippedPackage | None = None
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Verification records the driver keeps, by device label: reused when their key matches here."""
    version: str = __version__


@dataclass
class Started:
    node: dict[str, Any]


@dataclass
class DeviceCheck:
    """One device's verification (None when the driver's kept record was reused) and its golden bytes."""

    label: str
    key: str
    verification: Verification | None
    golden: bytes | None = None


@dataclass
class Outcome:
    node: dict[str, Any]
    build: PackageBuild | None = None
    zip_bytes: bytes | None = None
    """The zip, when this task built it (None: the driver's shipped one was reused)."""
    manifest_bytes: bytes | None = None
    checks: list[DeviceCheck] = field(default_factory=list)
    failure: tuple[str, Any] | None = None
    """``(stage, portable error)`` of what stopped this package here (see :func:`portable`)."""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stage: str = "node"
    """Where the task is (``node``, ``export``, ``load``): the stage its failure is recorded at."""


class CollectingUI(UI):
    """The task's warnings, handed to the driver's display."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def node_root() -> Path:
    """This node's weightpack folder: ``$WEIGHTPACK_CACHE/cluster`` (see ``pack --cache-dir``)."""
    from packager.cache import default_cache_dir

    return default_cache_dir() / "cluster"


def node_info(target: str | None) -> dict[str, Any]:
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "address": ray.util.get_node_ip_address(),
        "target": target,
        "pid": os.getpid(),
    }


def machine_specs(env: dict[str, Any]) -> dict[str, Any]:
    """The node's machine as a package's manifest records it (no NVML clocks: they change by the minute)."""
    import psutil

    keys = ("python", "platform", "machine", "cpu", "cpu_count", "cuda", "tensorrt_version", "libraries")
    return {**{k: env.get(k) for k in keys}, "memory_bytes": psutil.virtual_memory().total}


def portable(exc: BaseException) -> Any:
    """An error as class, args and attributes: error classes whose ``__init__`` takes other arguments than
    their message do not survive pickling (rebuilt on the driver by :func:`rebuilt`)."""
    from packager.jobs import _RemoteError

    return _RemoteError.of(exc)


def rebuilt(carried: Any) -> BaseException:
    """The error :func:`portable` carried; its message alone if the driver cannot import its class."""
    try:
        return carried.rebuild()
    except Exception:  # a library the driver lacks: keep what was said
        return WeightpackError(f"{carried.qualname}: {' '.join(map(str, carried.args))}")


def run_package_task(task: PackageTask) -> Iterator[Started | Outcome]:
    """The Ray task (a streaming generator): :class:`Started`, then the :class:`Outcome`."""
    node = node_info(task.target)
    yield Started(node)
    yield _run(task, node)


def _run(task: PackageTask, node: dict[str, Any]) -> Outcome:
    started = time.monotonic()
    ui = CollectingUI()
    out = Outcome(node=node)
    root = node_root()
    for folder in ("scratch", "upstream"):  # what killed tasks left on this node
        atomic.sweep(root / folder, recursive=False)
    label = f"task-{task.variant}-{task.backend}" + (f"-{task.target}" if task.target else "")
    with atomic.temp_dir(root / "scratch", label) as scratch:
        try:
            _work(task, root, scratch, out, ui)
        except WeightpackError as exc:
            out.failure = (out.stage, portable(exc))
        except OSError as exc:  # a full disk on the node: the environment's fault (exit 3)
            out.failure = (out.stage, portable(WriteError.of(exc, scratch)))
    out.warnings, out.seconds = ui.warnings, time.monotonic() - started
    return out


def _work(task: PackageTask, root: Path, scratch: Path, out: Outcome, ui: UI) -> None:
    from backends.device import export_device
    from backends.loaded import release as release_reference
    from bench import environment
    from bench.threads import apply_threads
    from packager.pipeline import preflight

    if task.version != __version__:
        raise ClusterError(
            f"node {out.node['hostname']} runs weightpack {__version__}, the driver {task.version}: "
            "install the same weightpack on every node (docs/cluster.md)"
        )
    settings = task.settings.here()
    threads = apply_threads(settings.thread_settings(task.recipe.bench.threads))
    devices = list(settings.devices)
    env = {**environment.capture(threads), "threads": threads.to_dict()}
    fingerprint = reuse.environment_fingerprint(env)
    out.node["machine"] = machine_specs(env)
    out.stage = "export"
    blocked = preflight([task.backend], devices)
    if blocked:
        raise blocked[task.backend]
    upstream = _Upstream(task, root)
    out_dir = scratch / "out"
    golden = _golden(task, out_dir)
    build = _shipped_build(task, out_dir, export_device(devices), settings)
    if build is None:
        build = _fresh_build(task, upstream, out_dir, export_device(devices), out, ui, golden, settings)
    release_reference()  # verification's memory figures must not include it
    out.build, out.stage = build, "load"
    for device in devices:
        label = device_label(device, task.target)
        key = reuse.verification_key(
            task.recipe, build, label, settings.measure_latency, task.reference_key, fingerprint
        )
        if (task.kept.get(label) or {}).get("key") == key:
            out.checks.append(DeviceCheck(label, key, None))
            continue
        out.checks.append(_verify(task, build, device, label, key, golden, settings, out_dir, ui))


def _golden(task: PackageTask, out_dir: Path) -> Path:
    """The driver's golden (and its record) written where the check reads it."""
    name, data, record = task.golden
    path = out_dir / "goldens" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if record is not None:
        path.with_suffix(".json").write_bytes(record)
    return path


class _Upstream:
    """The variant's upstream folder on this node, fetched from the driver on first use."""

    def __init__(self, task: PackageTask, root: Path) -> None:
        self.task, self.root, self._path = task, root, None

    def path(self) -> Path:
        if self._path is None:
            import ray

            from packager.cluster.upstream import materialize
            from packager.reference import check_recipe_imports

            refs = self.task.upstream
            fetch = lambda: ((rel, ray.get(ref)) for rel, ref in refs)  # noqa: E731
            self._path = materialize(self.root, self.task.provenance, fetch)
            check_recipe_imports(self.task.recipe, [self.task.backend])
        return self._path


def _shipped_build(
    task: PackageTask, out_dir: Path, device: str, settings: RunSettings
) -> PackageBuild | None:
    """The driver's zip, reused when its build key matches on this node (else None: build it here)."""
    import ray

    from packager.build import reused_build
    from packager.sources import FetchedSource

    if task.shipped is None:
        return None
    zip_path = out_dir / task.shipped.zip_name
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    zip_path.write_bytes(ray.get(task.shipped.zip_ref[0]))
    manifest.manifest_path_for(zip_path).write_bytes(task.shipped.manifest)
    stub = FetchedSource(path=out_dir, provenance=task.provenance)  # the key reads the provenance only
    return reused_build(
        task.recipe, task.variant, task.backend, stub, out_dir, task.reference_kwargs, device,
        limits=settings.limits,
    )  # fmt: skip


def _fresh_build(
    task: PackageTask,
    upstream: _Upstream,
    out_dir: Path,
    device: str,
    out: Outcome,
    ui: UI,
    golden: Path,
    settings: RunSettings,
) -> PackageBuild:
    """Export + zip here (traced on the golden's parity batch); the manifest records the node it was built
    on (``built_on``)."""
    from packager.build import build_package
    from packager.goldens import load_arrays
    from packager.sources import FetchedSource

    fetched = FetchedSource(path=upstream.path(), provenance=task.provenance)
    inputs = load_arrays(golden, "input")
    build = build_package(
        task.recipe, task.variant, task.backend, fetched, inputs, task.reference_class, out_dir, ui,
        task.reference_kwargs, device=device, limits=settings.limits,
    )  # fmt: skip
    data = json.loads(build.manifest_path.read_text("utf-8"))
    data["built_on"] = {k: out.node.get(k) for k in ("hostname", "address", "node_id", "target", "machine")}
    atomic.write_json(build.manifest_path, data)
    out.zip_bytes = build.zip_result.zip_path.read_bytes()
    out.manifest_bytes = build.manifest_path.read_bytes()
    return build


def _verify(
    task: PackageTask,
    build: PackageBuild,
    device: str,
    label: str,
    key: str,
    golden: Path,
    settings: RunSettings,
    out_dir: Path,
    ui: UI,
) -> DeviceCheck:
    from packager.package_check import package_check
    from packager.verify import verify_on_device

    check = package_check(task.recipe, build, device, settings, golden)
    verification = verify_on_device(check, out_dir / "goldens", ui)
    golden = None
    if verification.golden is not None:
        with contextlib.suppress(OSError):
            golden = verification.golden.read_bytes()
    if verification.error is not None:
        verification.error = portable(verification.error)
    return DeviceCheck(label, key, verification, golden)
