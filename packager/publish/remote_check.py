"""How ``pack verify-remote`` checks one downloaded package: the check ``pack`` ran on it
(:func:`packager.check.check_package`), with the tolerances and the task check of the recipe that builds
its architecture when one is found (``./recipes``, then the built-in ones), else the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packager.errors import UsageError


def check_goldens(
    package_dir: Path,
    model_class: str,
    backend: str,
    manifest: dict[str, Any],
    meta: dict[str, Any],
    goldens: Path,
    device: str,
) -> Any:
    """The package's outputs on the recorded inputs against the recorded reference outputs: a
    :class:`packager.check.CheckResult`."""
    from packager.check import check_package
    from packager.goldens import load_arrays

    inputs, expected = load_arrays(goldens, "input"), load_arrays(goldens, "output")
    if not inputs or not expected:
        raise UsageError(f"{goldens}: holds no input/* or output/* arrays")
    request = check_request(model_class, device, inputs, expected, meta, backend, manifest)
    return check_package(package_dir, request)


def check_request(
    model_class: str,
    device: str,
    inputs: dict[str, Any],
    expected: dict[str, Any],
    meta: dict[str, Any],
    backend: str,
    manifest: dict[str, Any],
) -> Any:
    """The check ``pack`` ran on this package: the recipe's tolerances and its declared task check when a
    recipe of this architecture is found (else the defaults and element parity only)."""
    from packager.check import CheckRequest

    architecture = meta.get("modelArchitecture", "")
    recipe = recipe_for(architecture, backend)
    tolerance = _tolerance(architecture, backend, manifest)
    task_check = recipe.parity.task_check if recipe else None
    return CheckRequest(model_class, device, inputs, expected, tolerance, task_check=task_check)


def recipe_for(architecture: str, backend: str | None = None) -> Any:
    """The recipe (./recipes, then the built-in ones) that builds ``architecture`` (with ``backend``)."""
    from backends.registry import find_backend
    from packager.recipes import default_recipe_dirs, find_recipes, load_recipe

    spec = find_backend(backend) if backend else None
    name = spec.name if spec else backend
    for directory in default_recipe_dirs():
        for path in find_recipes(directory).values():
            try:
                recipe = load_recipe(path)
            except Exception:
                continue
            if recipe.architecture == architecture and (name is None or name in recipe.backends):
                return recipe
    return None


def _tolerance(architecture: str, backend: str, manifest: dict[str, Any]):
    """The recipe's tolerances when a recipe of this architecture is found, else the defaults."""
    from bench.parity import default_tolerance
    from packager.verify import tolerances_for

    recipe = recipe_for(architecture, backend)
    if recipe is not None:
        from backends.registry import find_backend

        spec = find_backend(backend)
        return tolerances_for(recipe, spec.name if spec else backend)
    quantization = str(manifest.get("quantization", "fp32"))
    return lambda output, dtype: default_tolerance(dtype, backend, quantization)


def check_lines(checked: Any, prefix: str = "") -> list[str]:
    """One line per compared output and per task check."""
    lines = [
        f"{prefix}{p.output}: {'ok' if p.passed else 'MISMATCH'} max_abs={p.max_abs} "
        f"(atol={p.atol}, rtol={p.rtol})" + ("" if p.passed else f" {p.reason}")
        for p in checked.parity
    ]
    for c in checked.task_checks:
        bound = "at least" if c.rule == ">=" else "at most"
        verdict = "ok" if c.passed else "FAILED"
        lines.append(
            f"{prefix}task {c.check} on {c.output}: {verdict} {c.value:.6g} ({bound} {c.threshold:g})"
        )
    return lines
