"""pytest plugin (entry point ``pytest11: weightpack``): recipes x pack outputs -> parametrized tests.

Inactive unless ``--weightpack-goldens`` is given: it then only adds its options and an optional
pytest-benchmark hook, so the project's own suite (and any other) is unaffected. When active, pytest
collects :mod:`packager.nightly.suite` (instead of ``testpaths`` when no paths were given on the command line,
in addition to them otherwise), whose tests are parametrized here, one per family x variant x backend x
device (x batch size for latency):

* ``test_parity``: the package (zip from the pack output folder, loaded through its model class) run on the
  recorded sample inputs, compared with the recorded upstream reference outputs under the recipe's
  tolerances; the error against the package's own recorded outputs (drift) is reported as a property;
* ``test_latency``: ``benchmark.pedantic`` around ``infer`` + device synchronize, with the environment in
  ``extra_info`` and in ``machine_info``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from packager.arguments import comma_list

SUITE = Path(__file__).with_name("suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("weightpack", "weightpack nightly parity and latency")
    group.addoption(
        "--weightpack-goldens",
        action="append",
        type=Path,
        metavar="DIR",
        help="pack output folder (report.json, zips, goldens/), or a folder of them; enables the plugin",
    )
    group.addoption(
        "--weightpack-recipes", type=comma_list, metavar="A,B", help="families to test (default: all packed)"
    )
    group.addoption(
        "--weightpack-recipe-dir", action="append", type=Path, metavar="DIR", help="extra recipe folder"
    )
    group.addoption(
        "--weightpack-devices", type=comma_list, metavar="cpu,cuda:0", help="devices (default: all available)"
    )
    group.addoption(
        "--weightpack-backends", type=comma_list, metavar="A,B", help="backends (default: the recipe's)"
    )
    group.addoption(
        "--weightpack-variants", type=comma_list, metavar="A,B", help="variants (default: all the recipe's)"
    )
    group.addoption("--weightpack-rounds", type=int, default=30, help="latency rounds per case (30)")
    group.addoption("--weightpack-warmup", type=int, default=5, help="latency warm-up rounds (5)")


def active(config: pytest.Config) -> bool:
    return bool(config.getoption("weightpack_goldens", None))


def pytest_configure(config: pytest.Config) -> None:
    if not active(config):
        return
    config.addinivalue_line("markers", "weightpack: nightly parity/latency case generated from a recipe")
    suite = str(SUITE)
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        if suite not in config.args:
            config.args.append(suite)
    else:
        config.args[:] = [suite]


@dataclass(frozen=True)
class Case:
    family: str
    variant: str
    backend: str
    device: str
    out_dir: Path
    package: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    report: dict[str, Any] | None = field(default=None, hash=False, compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.family}-{self.variant}-{self.backend}-{self.device.replace(':', '')}"


def find_reports(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if (path / "report.json").is_file():
            found.append(path / "report.json")
        else:
            found += sorted(path.glob("*/report.json"))
    return found


def recipe_for(config: pytest.Config, family: str) -> Any:
    from packager.recipes import default_recipe_dirs, resolve_family

    dirs = [*(config.getoption("weightpack_recipe_dir") or []), *default_recipe_dirs()]
    return resolve_family(family, dirs)


@functools.lru_cache(maxsize=1)
def _available_devices() -> tuple[str, ...]:
    from backends.device import available_devices

    return tuple(available_devices())


def build_cases(config: pytest.Config) -> list[Case]:
    """family x variant x backend x device from the recipes; a case with no package is kept (skipped)."""
    families = config.getoption("weightpack_recipes")
    devices = config.getoption("weightpack_devices") or list(_available_devices())
    only_backends = config.getoption("weightpack_backends")
    only_variants = config.getoption("weightpack_variants")
    cases = []
    for report_path in find_reports(config.getoption("weightpack_goldens") or []):
        report = json.loads(report_path.read_text(encoding="utf-8"))
        family = report["family"]
        if families and family not in families:
            continue
        recipe = recipe_for(config, family)
        for variant in recipe.variants:
            if only_variants and variant not in only_variants:
                continue
            for backend in recipe.backends:
                if only_backends and backend not in only_backends:
                    continue
                package = next(
                    (p for p in report["packages"] if (p["variant"], p["backend"]) == (variant, backend)),
                    None,
                )
                for device in devices:
                    cases.append(Case(family, variant, backend, device, report_path.parent, package, report))
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if "weightpack_case" not in names:
        return
    config = metafunc.config
    cases = build_cases(config) if active(config) else []
    if "weightpack_batch_size" in names:
        params, ids = [], []
        for case in cases:
            batches = recipe_for(config, case.family).bench.batch_sizes
            for bs in batches:
                params.append(pytest.param(case, bs, marks=_marks(case)))
                ids.append(f"{case.id}-bs{bs}")
        metafunc.parametrize(("weightpack_case", "weightpack_batch_size"), params, ids=ids)
    else:
        params = [pytest.param(c, marks=_marks(c)) for c in cases]
        metafunc.parametrize("weightpack_case", params, ids=[c.id for c in cases])


def _marks(case: Case) -> list[Any]:
    marks = [pytest.mark.weightpack]
    if case.package is None:
        marks.append(
            pytest.mark.skip(
                reason=f"{case.variant}/{case.backend} was not packed in {case.out_dir} "
                f"(run: pack {case.family} --variants {case.variant} --backends {case.backend})"
            )
        )
    if case.device.startswith("cuda"):
        marks.append(pytest.mark.gpu)
        if case.device not in _available_devices() and "cuda:0" not in _available_devices():
            marks.append(pytest.mark.skip(reason=f"{case.device} is not available here"))
    return marks


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    from bench import environment as env

    return env.capture()


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    if not active(config):
        return
    from bench.fingerprint import env_key

    env = environment()
    machine_info["weightpack"] = {"env_key": env_key(env), "environment": env}
