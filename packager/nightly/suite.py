"""The tests :mod:`packager.nightly.plugin` parametrizes (collected only when the plugin is active)."""

from __future__ import annotations

import atexit
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_MODELS: dict[tuple[str, str], Any] = {}
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
def weightpack_model(weightpack_case: Any) -> Any:
    """The case's package, unzipped and loaded through its model class once per session and device (the
    same :func:`packager.check.open_package` ``pack`` verifies with)."""
    from backends.errors import ConsumerUnavailableError
    from backends.registry import load_kwargs_for
    from packager.check import open_package

    case = weightpack_case
    key = (str(case.out_dir / case.package["zip"]), case.device)
    if key not in _MODELS:
        inputs, _, _ = _goldens(case)
        target = _scratch(case.out_dir) / f"{case.id}"
        zip_path = case.out_dir / case.package["zip"]
        try:
            opened = open_package(
                zip_path,
                case.package["model_class"],
                case.device,
                inputs,
                target,
                load_kwargs=load_kwargs_for(case.backend),
            )
        except ConsumerUnavailableError as exc:  # a package for inference-models' own class
            pytest.skip(str(exc))
        _MODELS[key] = opened.model
    return _MODELS[key]


def _goldens(case: Any) -> tuple[dict, dict, dict | None]:
    from packager.goldens import load_arrays

    ref_path = case.out_dir / case.report["references"][case.variant]["golden"]
    inputs, reference = load_arrays(ref_path, "input"), load_arrays(ref_path, "output")
    recorded = next(
        (
            g
            for g in case.report["goldens"]
            if (g["variant"], g["backend"], g["device"]) == (case.variant, case.backend, case.device)
        ),
        None,
    )
    package = load_arrays(case.out_dir / recorded["path"], "output") if recorded else None
    return inputs, reference, package


def _sync(case: Any, model: Any):
    if case.device.startswith("cuda"):
        try:
            import torch

            return lambda: torch.cuda.synchronize(case.device)
        except ImportError:
            pass
    return getattr(model, "synchronize", lambda: None)


def test_parity(weightpack_case: Any, weightpack_model: Any, record_property: Any, request: Any) -> None:
    """Package outputs vs the recorded upstream reference, under the recipe's tolerances: ``pack``'s own
    check (:func:`packager.check.check_outputs`)."""
    from packager.check import CheckRequest, check_outputs
    from packager.nightly.plugin import recipe_for
    from packager.verify import tolerances_for

    case = weightpack_case
    inputs, reference, recorded = _goldens(case)
    recipe = recipe_for(request.config, case.family)
    tolerance = tolerances_for(recipe, case.backend)
    check = check_outputs(
        weightpack_model,
        CheckRequest(case.package["model_class"], case.device, inputs, reference, tolerance),
    )
    outputs, results = check.outputs, check.parity
    for r in results:
        record_property(f"{r.output}.max_abs", r.max_abs)
        if recorded is not None and r.output in recorded and r.passed:
            drift = np.max(np.abs(outputs[r.output].astype(np.float64) - recorded[r.output]))
            record_property(f"{r.output}.drift_vs_recorded_max_abs", float(drift))
    failed = [f"{r.output}: {r.reason} (max_abs={r.max_abs}, atol={r.atol}, rtol={r.rtol})" for r in results]
    failed = [f for r, f in zip(results, failed, strict=True) if not r.passed]
    assert not failed, f"{case.id}: " + "; ".join(failed)


def test_latency(
    weightpack_case: Any, weightpack_batch_size: int, weightpack_model: Any, benchmark: Any, request: Any
) -> None:
    """``infer`` + device synchronize on the recorded inputs tiled to the batch size."""
    from bench.fingerprint import env_key
    from packager.nightly.plugin import environment

    case, bs = weightpack_case, weightpack_batch_size
    inputs, _, _ = _goldens(case)
    rows = [i % len(next(iter(inputs.values()))) for i in range(bs)]
    batch = {k: np.ascontiguousarray(v[rows]) for k, v in inputs.items()}
    model, sync = weightpack_model, _sync(case, weightpack_model)
    infer = model.infer if hasattr(model, "infer") else (lambda x: model(**x))

    def once() -> None:
        infer(batch)
        sync()

    env = environment()
    benchmark.group = f"{case.family}-{case.variant}-bs{bs}"
    benchmark.extra_info.update(
        {
            "family": case.family,
            "variant": case.variant,
            "backend": case.backend,
            "device": case.device,
            "batch_size": bs,
            "package_md5": case.package["md5"],
            "env_key": env_key(env),
            "environment": env,
            "timer": "host wall clock around infer + device synchronize",
        }
    )
    benchmark.pedantic(
        once,
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
