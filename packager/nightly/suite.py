"""The tests :mod:`packager.nightly.plugin` parametrizes (collected only when the plugin is active).

Every case goes through its package's :class:`~packager.package_check.PackageCheck`, built by the one
factory ``pack`` verifies with, from the pack output's report entry, the run's settings and the golden."""

from __future__ import annotations

import atexit
import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_OPENED: dict[tuple[str, str], Any] = {}
_SCRATCH: dict[Path, Path] = {}


def _scratch(out_dir: Path) -> Path:
    """Where this session unzips the packages of one pack output: an owned temporary folder under it
    (never the system's /tmp), removed at exit, and swept by the next ``pack`` there if the session is
    killed."""
    from packager import atomic

    if out_dir not in _SCRATCH:
        _SCRATCH[out_dir] = atomic.new_temp_dir(out_dir, "nightly")
        atexit.register(shutil.rmtree, _SCRATCH[out_dir], True)
    return _SCRATCH[out_dir]


@pytest.fixture
def weightpack_check(weightpack_case: Any, request: Any) -> Any:
    """The case's :class:`~packager.package_check.PackageCheck` (:func:`packager.package_check
    .package_check` on the report entry, the device, the run's settings and the variant's golden)."""
    from packager.nightly.plugin import recipe_for, run_settings
    from packager.package_check import package_check

    case = weightpack_case
    golden = case.out_dir / case.report["references"][case.variant]["golden"]
    recipe = recipe_for(request.config, case.report)
    settings = run_settings(request.config)
    return package_check(recipe, case.package, case.device, settings, golden, case.out_dir)


@pytest.fixture
def weightpack_opened(weightpack_case: Any, weightpack_check: Any) -> Any:
    """The case's package opened by its check (unzipped, loaded, run once) once per session and device."""
    from backends.errors import ConsumerUnavailableError

    case = weightpack_case
    key = (str(weightpack_check.package.path), case.device)
    if key not in _OPENED:
        try:
            _OPENED[key] = weightpack_check.open(_scratch(case.out_dir) / case.id)
        except ConsumerUnavailableError as exc:  # a package for inference-models' own class
            pytest.skip(str(exc))
    return _OPENED[key]


def _recorded(case: Any) -> dict | None:
    """The package's own outputs as ``pack`` recorded them on this device (for the drift property)."""
    from packager.goldens import load_arrays

    recorded = next(
        (
            g
            for g in case.report["goldens"]
            if (g["variant"], g["backend"], g["device"]) == (case.variant, case.backend, case.device)
        ),
        None,
    )
    return load_arrays(case.out_dir / recorded["path"], "output") if recorded else None


def test_parity(
    weightpack_case: Any, weightpack_check: Any, weightpack_opened: Any, record_property: Any
) -> None:
    """Package outputs vs the recorded upstream reference at every case of the golden, under the recipe's
    tolerances and task checks: ``pack``'s own check."""
    case, check = weightpack_case, weightpack_check
    recorded = _recorded(case)
    failed = []
    for parity_case in check.checked_cases():
        result = check.check(weightpack_opened, parity_case)
        at = f" at {parity_case.label}" if parity_case.label else ""
        record_property(f"steps{at}", result.steps)  # calls compared: a sequence's length
        for r in result.parity:
            record_property(f"{r.output}{at}.max_abs", r.max_abs)
            if parity_case is check.cases[0] and recorded and r.output in recorded and r.passed:
                drift = np.max(np.abs(result.outputs[r.output].astype(np.float64) - recorded[r.output]))
                record_property(f"{r.output}.drift_vs_recorded_max_abs", float(drift))
            if not r.passed:
                bounds = f"max_abs={r.max_abs}, atol={r.atol}, rtol={r.rtol}"
                failed.append(f"{r.output}{at}: {r.reason} ({bounds})")
        tasks = [c for c in result.task_checks if not c.passed]
        failed += [f"task {c.check}{at}: {c.value:.6g} vs {c.threshold}" for c in tasks]
    assert not failed, f"{case.id}: " + "; ".join(failed)


def timed_call(model: Any, device: str, sets: list[dict]) -> Any:
    """What each benchmark round runs: the latency harness's own timed path (:func:`bench.latency
    .timed_calls`: ``run`` then ``fetch``, else ``infer``), then the device synchronize, on the next of the
    check's input sets in turn."""
    from bench.latency import device_synchronize, timed_calls

    run, fetch = timed_calls(model)
    sync = device_synchronize(model, device) or (lambda: None)
    turn = itertools.count()

    def once() -> None:
        out = run(sets[next(turn) % len(sets)])
        if fetch is not None:
            fetch(out)
        sync()

    return once


def test_latency(
    weightpack_case: Any,
    weightpack_row: Any,
    weightpack_check: Any,
    weightpack_opened: Any,
    benchmark: Any,
    request: Any,
) -> None:
    """pytest-benchmark rounds of the check's timed call on the check's input sets for this row."""
    from bench.fingerprint import env_key
    from packager.nightly.plugin import environment
    from packager.package_check import inputs_digest

    case, row, check = weightpack_case, weightpack_row, weightpack_check
    sets = check.input_sets(row)
    env = environment(check.threads)
    benchmark.group = f"{case.family}-{case.variant}-bs{row.batch_size}"
    benchmark.extra_info.update(
        {
            "family": case.family,
            "variant": case.variant,
            "backend": case.backend,
            "device": case.device,
            "batch_size": row.batch_size,
            "input_shape": row.label,
            "input_sets": len(sets),
            "inputs_digest": inputs_digest(sets),
            "package_md5": case.package["md5"],
            "env_key": env_key(env),
            "environment": env,
            "timer": "pytest-benchmark (time.perf_counter) around run + fetch + device synchronize",
        }
    )
    benchmark.pedantic(
        timed_call(weightpack_opened.model, case.device, sets),
        rounds=request.config.getoption("weightpack_rounds"),
        warmup_rounds=request.config.getoption("weightpack_warmup"),
        iterations=1,
    )
    stats = getattr(benchmark, "stats", None)
    data = getattr(getattr(stats, "stats", None), "data", None)
    if data:
        ms = np.asarray(data) * 1000
        benchmark.extra_info.update(
            {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
        )
