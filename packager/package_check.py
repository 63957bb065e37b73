"""One way to open, check and time a package, shared by every entry that does it: ``pack``'s verify step
(:mod:`packager.verify`), the nightly suite (:mod:`packager.nightly.suite`), ``pack verify-remote``
(:mod:`packager.publish.verify_remote`) and compare's measure step (:mod:`packager.compare.measure`).

Each builds a :class:`PackageCheck` with :func:`package_check` from the recipe, the package (a fresh build,
a ``report.json`` entry, or a folder downloaded from a registry), the device, the run's settings
(:class:`packager.settings.RunSettings`) and the variant's golden, and the check decides everything once:

* how the package is loaded: the run's threads (``--threads`` over ``[bench] threads`` over the pinned
  default) applied to torch and passed to the model class, plus the backend's own ``load_kwargs``; the
  archive limits a zip is extracted within;
* how its outputs are judged: the tolerance per output (:func:`tolerances_for`: the recipe's per-output
  keys, its per-backend keys, the noise floor recorded beside the golden, the dtype/backend defaults) and
  the task checks (``bench.tasks``, in :func:`packager.check.check_outputs`);
* what it is checked on: every case the golden holds (:func:`packager.goldens.load_golden`: the parity
  batch or a recurrent model's sequence, each further shape, the batch-axis proof);
* how it is timed: the latency config and batch sizes (the recipe's, with the run's overrides), the rows
  (:func:`latency_plan`) and each row's input sets (:func:`packager.inputs.latency_sets`).

So the same package gets the same verdict from each entry, and latency rows timed on the same inputs by
the same harness (docs/measurement.md, "One check").
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Tensors
from backends.registry import find_backend, load_kwargs_for
from bench import memory
from bench.latency import LatencyConfig, LatencyResult, measure_model, validate_input_sets
from bench.parity import default_tolerance, noise_floor_tolerance
from bench.threads import ThreadSettings, apply_threads
from packager import atomic
from packager.archive import Limits
from packager.check import CheckRequest, CheckResult, OpenedPackage, ToleranceFn, check_outputs, open_package
from packager.goldens import ParityCase, load_golden
from packager.inputs import latency_sets
from packager.recipes import Recipe
from packager.reuse import recorded_noise_floor
from packager.settings import RunSettings


@dataclass(frozen=True)
class PackageRef:
    """Which package: its zip (or unzipped folder), what it packages and the class that loads it."""

    path: Path
    variant: str
    backend: str
    model_class: str
    quantization: str = "fp32"
    static_batch: bool = False
    """Its manifest declares ``staticBatchSize``: the batch-axis proof is not checked on it."""

    @classmethod
    def of(cls, package: Any, out_dir: Path | None = None) -> PackageRef:
        """From a :class:`packager.build.PackageBuild` or a ``report.json`` package entry (its zip
        relative to ``out_dir``)."""
        if isinstance(package, PackageRef):
            return package
        if isinstance(package, Mapping):
            manifest = package.get("package_manifest") or {}
            return cls(
                Path(out_dir or ".") / package["zip"],
                package["variant"],
                package["backend"],
                package["model_class"],
                str(manifest.get("quantization", "fp32")),
                "staticBatchSize" in manifest,
            )
        manifest = package.package_manifest or {}
        return cls(
            package.zip_result.zip_path,
            package.variant,
            package.backend,
            package.model_class,
            str(manifest.get("quantization", "fp32")),
            "staticBatchSize" in manifest,
        )


@dataclass(frozen=True)
class TimedRow:
    """One latency row: a shape of the variant's shape set at one batch size."""

    shape: int
    batch_size: int
    label: str | None
    """The row's ``input_shape`` (every input's full shape at this batch); ``None`` without a shape set."""


@dataclass
class LatencyRow:
    """One batch size's timing with the memory around it."""

    batch_size: int
    result: LatencyResult
    memory: dict[str, Any]
    input_sets: int
    input_shape: str | None = None
    inputs_digest: str | None = None
    """sha256 (16 hex digits) of the input sets timed: equal rows from two entries timed the same arrays."""


@dataclass(frozen=True)
class PackageCheck:
    """Everything it takes to open, check and time one package on one device (see the module docstring)."""

    package: PackageRef
    device: str
    cases: tuple[ParityCase, ...]
    tolerance: ToleranceFn
    threads: ThreadSettings
    load_kwargs: Mapping[str, Any]
    limits: Limits
    recipe: Recipe | None = None
    latency: LatencyConfig | None = None
    """``None``: the package is checked, not timed (no recipe, or ``--no-latency``)."""
    batch_sizes: tuple[int, ...] = ()

    # -- open ------------------------------------------------------------------------------------------

    def open(self, unzip_dir: Path) -> OpenedPackage:
        """Extract (a zip, into ``unzip_dir``; a folder is used in place), load and run once, timed: the
        threads applied to torch and passed to the model class with the backend's own keyword arguments."""
        threads = apply_threads(self.threads)
        return open_package(
            self.package.path,
            self.package.model_class,
            self.device,
            self.cases[0].inputs,
            unzip_dir,
            load_kwargs={**threads.model_kwargs(), **self.load_kwargs},
            limits=self.limits,
        )

    @contextmanager
    def opened(self, scratch: Path) -> Iterator[OpenedPackage]:
        """:meth:`open` into an owned temporary folder under ``scratch`` (never the system's /tmp), removed
        afterwards and swept by a later run if this one is killed."""
        with atomic.temp_dir(Path(scratch), "check") as tmp:
            yield self.open(tmp / "package")

    # -- check -----------------------------------------------------------------------------------------

    def checked_cases(self) -> tuple[ParityCase, ...]:
        """The cases this package is checked on: the batch proof only where the batch is dynamic."""
        return tuple(c for c in self.cases if not (c.batch_proof and self.package.static_batch))

    def request(self, case: ParityCase) -> CheckRequest:
        recipe = self.recipe
        return CheckRequest(
            model_class=self.package.model_class,
            device=self.device,
            inputs=case.inputs,
            reference=case.reference,
            tolerance=self.tolerance,
            task=recipe.task if recipe else None,
            min_cosine=recipe.parity.min_cosine if recipe else None,
            task_check=recipe.parity.task_check if recipe else None,
            sequence=case.sequence,
        )

    def check(self, opened: OpenedPackage, case: ParityCase | None = None) -> CheckResult:
        """The package's outputs on ``case`` (default: the parity batch) against the reference's."""
        return check_outputs(opened.model, self.request(case or self.cases[0]), opened)

    # -- time ------------------------------------------------------------------------------------------

    def latency_plan(self) -> list[TimedRow]:
        if self.recipe is None or self.latency is None:
            return []
        return latency_plan(self.recipe, self.package.variant, self.batch_sizes)

    def input_sets(self, row: TimedRow) -> list[Tensors]:
        """The batches a row rotates among (:func:`packager.inputs.latency_sets`)."""
        assert self.recipe is not None
        spec = self.recipe.inputs_for(self.package.variant).at_shape(row.shape)
        parity = next((c.inputs for c in self.cases if c.shape == row.shape), self.cases[0].inputs)
        return latency_sets(spec, parity, row.batch_size)

    def measure(self, model: Any, row: TimedRow, baseline_used_bytes: int | None = None) -> LatencyRow:
        """Time ``model`` (the opened package's, or a wrapper of it) on the row's input sets with the
        latency config, the memory around it (``baseline_used_bytes``: device memory before the load)."""
        assert self.latency is not None
        sets = self.input_sets(row)
        distinct = validate_input_sets(sets)
        rss_before = memory.rss_bytes()
        memory.reset_cuda_peak(self.device)
        result = measure_model(
            model, self.device, sets, self.latency, baseline_used_bytes=baseline_used_bytes
        )
        mem = {
            "rss_bytes": memory.rss_bytes(),
            "rss_delta_bytes": memory.rss_bytes() - rss_before,
            "peak_rss_bytes": memory.peak_rss_bytes(),
            **memory.cuda_peak(self.device),
        }
        return LatencyRow(row.batch_size, result, mem, distinct, row.label, inputs_digest(sets))


def package_check(
    recipe: Recipe | None,
    package: Any,
    device: str,
    settings: RunSettings,
    golden: Path,
    out_dir: Path | None = None,
) -> PackageCheck:
    """The one factory. ``package``: a :class:`PackageRef`, a build, or a report entry (``out_dir``: the
    pack output it is in); ``golden``: the variant's reference golden, with the noise floor recorded beside
    it; ``recipe``: ``None`` where none is known (verify-remote of a package no recipe here builds: the
    default tolerances, no task checks, not timed)."""
    ref = PackageRef.of(package, out_dir)
    state = recipe.inputs_for(ref.variant).state if recipe else None
    cases = load_golden(golden, state)
    bench = recipe.bench if recipe else None
    timed = bench is not None and settings.measure_latency
    return PackageCheck(
        package=ref,
        device=device,
        cases=cases,
        tolerance=tolerances_for(recipe, ref.backend, recorded_floors(golden), ref.quantization),
        threads=settings.thread_settings(bench.threads if bench else None),
        load_kwargs=load_kwargs_for(ref.backend),
        limits=settings.limits,
        recipe=recipe,
        latency=settings.latency_config(bench) if timed else None,
        batch_sizes=settings.batch_sizes_for(bench) if timed else (),
    )


def latency_plan(recipe: Recipe, variant: str, batch_sizes: tuple[int, ...]) -> list[TimedRow]:
    """Every row a package of ``variant`` is timed at: each shape of its shape set at each batch size,
    labelled with its full shape; two shapes that differ only in batch give one row."""
    base = recipe.inputs_for(variant)
    rows: list[TimedRow] = []
    seen: set[str] = set()
    for shape in range(base.shape_count):
        spec, labelled = base.at_shape(shape), base.shape_label(shape) is not None
        for batch_size in batch_sizes:
            label = spec.tensors_label(batch_size) if labelled else None
            if label is not None:
                if label in seen:
                    continue
                seen.add(label)
            rows.append(TimedRow(shape, batch_size, label))
    return rows


def inputs_digest(sets: list[Tensors]) -> str:
    """sha256 over every array of ``sets`` (names, dtypes, shapes, bytes), 16 hex digits."""
    h = hashlib.sha256()
    for inputs in sets:
        for name in sorted(inputs):
            arr = np.ascontiguousarray(inputs[name])
            h.update(f"{name}:{arr.dtype}:{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


def tolerances_for(
    recipe: Recipe | None,
    backend: str,
    floors: Mapping[str, Mapping[str, float]] | None = None,
    quantization: str | None = None,
) -> ToleranceFn:
    """Recipe per-output override (the exact name, else the first glob pattern that matches it, such as
    ``"raw.*"``, ``"*"`` last), then recipe per-backend override, then the measured noise floor (when
    ``[parity] noise_floor = true`` recorded one), then the dtype/backend defaults (``quantization``: the
    recipe's for the backend, else the package's)."""
    spec = find_backend(backend)
    name = spec.name if spec else backend
    if recipe is not None and name in recipe.backends:
        quantization = recipe.backends[name].quantization
    quantization = quantization or "fp32"
    tolerances = recipe.parity.tolerances if recipe else {}
    per_backend = recipe.parity.backend_tolerances if recipe else {}

    def tolerance_for(output: str, dtype: str) -> tuple[float, float]:
        key = matching_key(tolerances, output)
        if key is not None:
            t = tolerances[key]
            return t.atol, t.rtol
        if name in per_backend:
            t = per_backend[name]
            return t.atol, t.rtol
        if floors and output in floors:
            return noise_floor_tolerance(floors[output], quantization)
        return default_tolerance(dtype, name, quantization)

    return tolerance_for


def matching_key(patterns: Iterable[str], name: str) -> str | None:
    """The key of ``patterns`` that applies to output ``name``: the exact name, else the first glob
    pattern (``*``, ``?``, ``[...]``, matching across dots) in the recipe's order, ``"*"`` after the rest."""
    keys = list(patterns)
    if name in keys:
        return name
    globs = [k for k in keys if k != "*" and any(c in k for c in "*?[")] + ["*"] * ("*" in keys)
    return next((k for k in globs if fnmatch.fnmatchcase(name, k)), None)


def recorded_floors(golden: Path) -> dict[str, dict[str, float]] | None:
    """The noise floor per output that ``pack`` measured for this golden (recorded beside it), if any."""
    floor = recorded_noise_floor(golden)
    return (floor or {}).get("outputs") or None
