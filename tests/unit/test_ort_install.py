"""Extras that cannot conflict, and the run-time check of the onnxruntime install (issue 13, part 1).

The extras test reads pyproject.toml and resolves every combination of extras (self-references and the
installed distributions' own requirements included); the run-time check is exercised on real
distribution metadata: ``*.dist-info`` folders written to temporary site folders, and this venv's own.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

import backends.device
from backends.errors import BrokenInstallError
from backends.onnx import install

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
ORT = set(install.ORT_DISTS)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _resolve(extras: tuple[str, ...]) -> set[str]:
    """Distribution names ``pip install weightpack[extras]`` asks for: pyproject's base + extras (its
    ``weightpack[...]`` self-references expanded), then, transitively, the requirements of every one of
    them that is installed here (their markers evaluated without extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    env = default_environment()
    wanted: list[Requirement] = [Requirement(r) for r in project["dependencies"]]
    todo = list(extras)
    seen_extras: set[str] = set()
    while todo:
        extra = todo.pop()
        if extra in seen_extras:
            continue
        seen_extras.add(extra)
        for line in optional[extra]:
            req = Requirement(line)
            if _norm(req.name) == "weightpack":
                todo.extend(req.extras)
            else:
                wanted.append(req)
    names: set[str] = set()
    queue = [r for r in wanted if r.marker is None or r.marker.evaluate({**env, "extra": ""})]
    while queue:
        req = queue.pop()
        name = _norm(req.name)
        if name in names:
            continue
        names.add(name)
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate({**env, "extra": ""}):
                queue.append(sub)
    return names


def _extras() -> list[str]:
    return sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


@pytest.mark.slow
def test_every_extra_combination_has_at_most_one_onnxruntime() -> None:
    """Base: no onnxruntime. Any combination with ``cpu`` and not ``gpu``: exactly onnxruntime; with
    ``gpu`` and not ``cpu``: exactly onnxruntime-gpu (plus TensorRT and NVML). ``cpu`` + ``gpu`` together
    is the one contradictory request: pip has no way to declare two extras exclusive, so it installs both
    (next test), and the run-time check refuses that environment."""
    extras = _extras()
    assert {"cpu", "gpu"} <= set(extras)
    others = [e for e in extras if e not in ("cpu", "gpu")]
    checked = 0
    for n in range(len(others) + 1):
        for combo in itertools.combinations(others, n):
            for flavour, expected in (
                ((), set()),
                (("cpu",), {"onnxruntime"}),
                (("gpu",), {"onnxruntime-gpu"}),
            ):
                resolved = _resolve(combo + flavour)
                assert resolved & ORT == expected, (combo + flavour, resolved & ORT)
                if flavour == ("gpu",):
                    assert {"tensorrt", "nvidia-ml-py"} <= resolved
                checked += 1
    assert checked == 3 * 2 ** len(others)


@pytest.mark.slow
def test_cpu_and_gpu_extras_together_install_both_and_are_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pip install 'weightpack[cpu,gpu]'`` (with any other extras) resolves to both onnxruntime
    packages in one site folder; every command that runs onnx then stops with exit 3 and the fix, for the
    CPU as well as for CUDA."""
    others = [e for e in _extras() if e not in ("cpu", "gpu")]
    for n in range(len(others) + 1):
        for combo in itertools.combinations(others, n):
            resolved = _resolve((*combo, "cpu", "gpu"))
            assert resolved & ORT == {"onnxruntime", "onnxruntime-gpu"}, (combo, resolved & ORT)
    site = tmp_path / "site-packages"  # what that install leaves: both in one folder
    _dist(site, "onnxruntime", "1.22.0")
    _dist(site, "onnxruntime-gpu", "1.22.0")
    monkeypatch.setattr(sys, "path", [str(site)])
    for device in ("cpu", "cuda:0"):
        with pytest.raises(
            BrokenInstallError, match=r"onnxruntime 1\.22\.0 and onnxruntime-gpu 1\.22\.0 are"
        ) as info:
            install.check(device, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        assert info.value.exit_code == 3
        assert "uninstall -y onnxruntime onnxruntime-gpu && " in str(info.value)


def test_tensorrt_requirement_has_an_upper_bound() -> None:
    """TensorRT majors beyond what backends.trt.precision knows are refused by the metadata too."""
    gpu = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    trt = next(Requirement(r) for r in gpu if Requirement(r).name == "tensorrt")
    assert trt.specifier.contains("10.13.0") and trt.specifier.contains("11.4.0")
    assert not trt.specifier.contains("12.0.0")


# ---- the run-time check, on real metadata -------------------------------------------------------------


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_both_packages_in_one_folder_exit_3_with_the_exact_fix(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist(site, "onnxruntime", "1.20.1")
    _dist(site, "onnxruntime-gpu", "1.20.1")
    dists = install.installed([str(site)])
    assert {(d.name, d.version) for d in dists} == {("onnxruntime", "1.20.1"), ("onnxruntime-gpu", "1.20.1")}
    problem = install.diagnose(dists, want_cuda=False, providers=None, python="/venv/bin/python")
    assert problem is not None and "installed together" in problem
    assert problem.endswith(
        "Fix: /venv/bin/python -m pip uninstall -y onnxruntime onnxruntime-gpu && "
        "/venv/bin/python -m pip install 'onnxruntime-gpu>=1.17'"
    )


def test_cuda_asked_of_the_cpu_package_names_the_swap(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _dist(site, "onnxruntime", "1.22.0")
    dists = install.installed([str(site)])
    providers = ["AzureExecutionProvider", "CPUExecutionProvider"]
    problem = install.diagnose(dists, want_cuda=True, providers=providers, python="py")
    assert problem is not None and "built without CUDAExecutionProvider" in problem
    assert problem.endswith(
        "Fix: py -m pip uninstall -y onnxruntime && py -m pip install 'onnxruntime-gpu>=1.17'"
    )
    assert install.diagnose(dists, want_cuda=False, providers=providers, python="py") is None


def test_gpu_package_shadowing_a_cpu_one_in_another_folder_is_fine(tmp_path: Path) -> None:
    """A venv with --system-site-packages on the GPU box: onnxruntime-gpu in the venv comes first on the
    path and wins cleanly over the image's CPU onnxruntime; only files in one folder collide."""
    venv, system = tmp_path / "venv", tmp_path / "system"
    _dist(venv, "onnxruntime-gpu", "1.22.0")
    _dist(system, "onnxruntime", "1.30.0")
    dists = install.installed([str(venv), str(system)])
    assert [d.name for d in dists] == ["onnxruntime-gpu", "onnxruntime"]
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert install.diagnose(dists, want_cuda=True, providers=cuda) is None
    # ... but in the other order the CPU one is what `import onnxruntime` gets
    dists = install.installed([str(system), str(venv)])
    problem = install.diagnose(dists, want_cuda=True, providers=["CPUExecutionProvider"], python="py")
    assert problem is not None and "onnxruntime 1.30.0" in problem and "uninstall -y onnxruntime " in problem


def test_gpu_package_whose_files_were_overwritten(tmp_path: Path) -> None:
    _dist(tmp_path, "onnxruntime-gpu", "1.22.0")
    problem = install.diagnose(
        install.installed([str(tmp_path)]), want_cuda=True, providers=["CPUExecutionProvider"]
    )
    assert problem is not None and "files were overwritten" in problem


def test_this_environment_passes_for_cpu_and_refuses_cuda_with_exit_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This venv (the cpu flavour): exactly one onnxruntime, CPU only. Asking for CUDA is an environment
    problem (exit 3) whose message is the exact command for this interpreter."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    assert [d.name for d in install.installed()][:1] == ["onnxruntime"]
    install.check("cpu")
    with pytest.raises(
        BrokenInstallError, match=r"uninstall -y onnxruntime && .* install 'onnxruntime-gpu"
    ) as info:
        install.check("cuda:0")
    assert info.value.exit_code == 3 and sys.executable in str(info.value)


def test_pack_on_cuda_with_cpu_onnxruntime_exits_3_before_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI: the onnx backend's preflight blocks it before anything is built; the report
    records each onnx package as failed with the fixing command, and the run exits 3."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    from packager.cli import main

    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 1)
    out = tmp_path / "out"
    args = ["mtcnn", "--variants", "onet", "--backends", "onnx", "--devices", "cuda", "--no-latency"]
    code = main([*args, "--out", str(out), "--quiet", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err
    assert not list(out.glob("*.zip"))
    [failure] = json.loads((out / "report.json").read_text())["failures"]
    assert failure["backend"] == "onnx" and failure["exit_code"] == 3
    assert (
        "pip install 'onnxruntime-gpu" in failure["message"]
        and "uninstall -y onnxruntime" in failure["message"]
    )


def test_setup_check_command_runs_in_this_venv() -> None:
    """The check scripts/setup.sh ends with passes in a cpu-flavour venv."""
    done = subprocess.run(
        [sys.executable, "-c", "from backends.onnx import install; install.check('cpu'); print('ok')"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
