"""pytest plugin (entry point ``pytest11: weightpack``): recipes x pack outputs -> parametrized tests.

Inactive unless ``--weightpack-goldens`` is given: it then only adds its options and an optional
pytest-benchmark hook, so the project's own suite (and any other) is unaffected. When active, pytest
collects :mod:`packager.nightly.suite` (instead of ``testpaths`` when no paths were given on the command line,
in addition to them otherwise), whose tests are parametrized here, one per family x variant x backend x
device (x batch size for latency):

* ``test_parity``: the package checked by its :class:`~packager.package_check.PackageCheck`, the one check
  ``pack`` verified it with (same load settings, limits, tolerances with the recorded noise floor, task
  checks, every case of the golden, a recurrent model's sequence); the error against the package's own
  recorded outputs (drift) is reported as a property;
* ``test_latency``: one per row of the check's latency plan, ``benchmark.pedantic`` around the check's
  timed call (the harness's ``run`` + ``fetch`` + device synchronize) on the check's input sets, with the
  environment in ``extra_info`` and in ``machine_info`` (docs/measurement.md, "One check").

The run's settings (devices resolved once, threads) are read from the options once
(:func:`run_settings`) and kept on the pytest config, which every fixture is handed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from packager.arguments import comma_list, thread_count

SUITE = Path(__file__).with_name("suite.py")
SETTINGS = pytest.StashKey[Any]()


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
    group.addoption(
        "--weightpack-threads",
        type=thread_count,
        metavar="N",
        help="torch and onnxruntime intra-op threads (default: [bench] threads, else 1)",
    )
    group.addoption("--weightpack-rounds", type=int, default=30, help="latency rounds per case (30)")
    group.addoption("--weightpack-warmup", type=int, default=5, help="latency warm-up rounds (5)")


def active(config: pytest.Config) -> bool:
    return bool(config.getoption("weightpack_goldens", None))


def pytest_configure(config: pytest.Config) -> None:
    if not active(config):
        return
    config.addinivalue_line("markers", "weightpack: nightly parity/latency case generated from a recipe")
    config.stash[SETTINGS] = _settings_from_options(config)
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


def _settings_from_options(config: pytest.Config) -> Any:
    """The run's settings from the plugin's options, devices resolved once (a device that is no device,
    or one this machine lacks, is a usage error naming what is accepted)."""
    from backends.errors import WeightpackError
    from packager.settings import RunSettings

    try:
        return RunSettings.of(
            devices=config.getoption("weightpack_devices"), threads=config.getoption("weightpack_threads")
        )
    except WeightpackError as exc:
        raise pytest.UsageError(f"--weightpack-devices: {exc}") from None


def run_settings(config: pytest.Config) -> Any:
    """The :class:`packager.settings.RunSettings` of this pytest run."""
    return config.stash[SETTINGS]


def recipe_for(config: pytest.Config, report: dict[str, Any]) -> Any:
    """The recipe a pack output was packed with (recorded in its report), else its family's in
    ``--weightpack-recipe-dir`` and the default folders: the same rule compare's measure step follows."""
    from packager.recipes import recipe_of_report

    return recipe_of_report(report, config.getoption("weightpack_recipe_dir") or [])


def build_cases(config: pytest.Config) -> list[Case]:
    """family x variant x backend x device from the recipes; a case with no package is kept (skipped)."""
    families = config.getoption("weightpack_recipes")
    devices = run_settings(config).devices
    only_backends = config.getoption("weightpack_backends")
    only_variants = config.getoption("weightpack_variants")
    cases = []
    for report_path in find_reports(config.getoption("weightpack_goldens") or []):
        report = json.loads(report_path.read_text(encoding="utf-8"))
        family = report["family"]
        if families and family not in families:
            continue
        recipe = recipe_for(config, report)
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
    if "weightpack_row" in names:
        from packager.package_check import latency_plan

        params, ids = [], []
        for case in cases:
            recipe = recipe_for(config, case.report)
            sizes = run_settings(config).batch_sizes_for(recipe.bench)
            for row in latency_plan(recipe, case.variant, sizes):
                params.append(pytest.param(case, row, marks=_marks(case)))
                shape = f"-s{row.shape}" if row.label else ""
                ids.append(f"{case.id}{shape}-bs{row.batch_size}")
        metafunc.parametrize(("weightpack_case", "weightpack_row"), params, ids=ids)
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
    return marks


@functools.lru_cache(maxsize=8)
def environment(threads: Any = None) -> dict[str, Any]:
    """The environment captured once per thread setting (``threads``: the run's, recorded as torch's)."""
    from bench import environment as env

    return env.capture(threads)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    if not active(config):
        return
    from bench.fingerprint import env_key

    env = environment()
    machine_info["weightpack"] = {"env_key": env_key(env), "environment": env}
