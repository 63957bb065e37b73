"""Extras that cannot conflict, and the run-time check of the onnxruntime install (issue 13, part 1).

The extras test reads pyproject.toml and resolves every combination of extras (self-references and the
installed distributions' own requirements included); the run-time check is exercised on real
distribution metadata: ``*.dist-info`` folders written to temporary site folders, and this venv's own.
"""

from __future__ import annotations

import functools
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
from backends.onnx import install, libs, pins

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
ORT = set(install.ORT_DISTS)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@functools.cache
def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@functools.cache
def _requirement(line: str) -> Requirement:
    """A requirement line, parsed once: every combination below walks the same lines (parsing them again
    for each was most of this file's run time)."""
    return Requirement(line)


@functools.cache
def _requires(name: str) -> tuple[Requirement, ...]:
    """An installed distribution's requirements that apply here (markers evaluated without extras); none
    when it is not installed here."""
    try:
        lines = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return ()
    env = default_environment()
    subs = [_requirement(line) for line in lines]
    return tuple(s for s in subs if s.marker is None or s.marker.evaluate({**env, "extra": ""}))


def _resolve(extras: tuple[str, ...]) -> set[str]:
    """Distribution names ``pip install weightpack[extras]`` asks for: pyproject's base + extras (its
    ``weightpack[...]`` self-references expanded), then, transitively, the requirements of every one of
    them that is installed here (their markers evaluated without extras)."""
    project = _project()
    optional = project["optional-dependencies"]
    env = default_environment()
    wanted: list[Requirement] = [_requirement(r) for r in project["dependencies"]]
    todo = list(extras)
    seen_extras: set[str] = set()
    while todo:
        extra = todo.pop()
        if extra in seen_extras:
            continue
        seen_extras.add(extra)
        for line in optional[extra]:
            req = _requirement(line)
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
        queue.extend(_requires(req.name))
    return names


def _extras() -> list[str]:
    return sorted(_project()["optional-dependencies"])


FLAVOURS = {"cpu": {"onnxruntime"}, "gpu": {"onnxruntime-gpu"}, "gpu-cu12": {"onnxruntime-gpu"}}
"""The extras that bring an onnxruntime: one flavour per install (the gpu ones differ in CUDA major)."""


def test_every_extra_combination_has_at_most_one_onnxruntime() -> None:
    """Base: no onnxruntime. Any combination with one flavour extra: exactly that flavour's onnxruntime
    (the gpu flavours with TensorRT and NVML). Two flavours together is the one contradictory request:
    pip has no way to declare extras exclusive, so cpu + gpu installs both (next test), and the run-time
    check refuses that environment."""
    extras = _extras()
    assert set(FLAVOURS) <= set(extras)
    others = [e for e in extras if e not in FLAVOURS]
    checked = 0
    for n in range(len(others) + 1):
        for combo in itertools.combinations(others, n):
            for flavour, expected in ((None, set()), *FLAVOURS.items()):
                resolved = _resolve(combo + ((flavour,) if flavour else ()))
                assert resolved & ORT == expected, (combo, flavour, resolved & ORT)
                if flavour and flavour.startswith("gpu"):
                    assert "nvidia-ml-py" in resolved and any(r.startswith("tensorrt-cu") for r in resolved)
                checked += 1
    assert checked == (1 + len(FLAVOURS)) * 2 ** len(others)


def test_cpu_and_gpu_extras_together_install_both_and_are_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pip install 'weightpack[cpu,gpu]'`` (with any other extras) resolves to both onnxruntime
    packages in one site folder; every command that runs onnx then stops with exit 3 and the fix, for the
    CPU as well as for CUDA."""
    others = [e for e in _extras() if e not in FLAVOURS]
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


# ---- issue 24, point 2: pins that match the CUDA build torch keeps --------------------------------------

NEWEST_TRT = {10: "10.16.1.11", 11: "11.4.0.106"}  # the newest release of each major on PyPI


def _gpu_requirements(extra: str) -> dict[str, Requirement]:
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {_norm(Requirement(r).name): Requirement(r) for r in optional[extra]}


@pytest.mark.parametrize("build", pins.ORT_GPU_BUILDS, ids=lambda b: b.extra)
def test_each_gpu_extra_pins_one_cuda_major_and_the_tensorrt_its_provider_opens(build) -> None:
    """Main's ``gpu`` extra said ``onnxruntime-gpu>=1.17`` (CUDA 11 and 12 builds beside a CUDA 13 torch)
    and ``tensorrt>=10,<12`` (TensorRT 11.4 today, which no onnxruntime-gpu's TensorRT provider can
    load). Each gpu extra now admits exactly one row of the build table."""
    reqs = _gpu_requirements(build.extra)
    ort = reqs["onnxruntime-gpu"].specifier
    assert ort.contains(build.first) and ort.contains(build.last), (build, ort)
    for other in pins.ORT_GPU_BUILDS:
        if other.cuda != build.cuda:
            assert not ort.contains(other.first) and not ort.contains(other.last), (build, other)
    trt = reqs[f"tensorrt-cu{build.cuda}"].specifier  # the CUDA major in the distribution's name
    assert trt.contains(NEWEST_TRT[build.trt]) and not trt.contains(f"{build.trt + 1}.0.0")
    assert "tensorrt" not in reqs and "nvidia-ml-py" in reqs  # never the unpinned meta package


def test_the_gpu_extra_follows_torchs_cuda_major() -> None:
    assert pins.gpu_extra("13.0") == ("gpu", None)
    assert pins.gpu_extra("12.8") == ("gpu-cu12", None)
    assert pins.gpu_extra(None) == ("gpu", None)  # unknown (PyPI's default torch): the default
    extra, warning = pins.gpu_extra("11.8")
    assert (
        extra == "gpu" and warning is not None and "CUDA 11.8, and no onnxruntime-gpu on PyPI is" in warning
    )


def test_the_fix_command_installs_the_gpu_extra_of_this_torch() -> None:
    requires = [
        'onnxruntime>=1.17; extra == "cpu"',
        'onnxruntime-gpu<1.32,>=1.27; extra == "gpu"',
        'onnxruntime-gpu<1.27,>=1.22; extra == "gpu-cu12"',
    ]
    assert install.requirement_specs(requires, gpu="gpu")["onnxruntime-gpu"] == "onnxruntime-gpu<1.32,>=1.27"
    cu12 = install.requirement_specs(requires, gpu="gpu-cu12")
    assert (
        cu12["onnxruntime-gpu"] == "onnxruntime-gpu<1.27,>=1.22"
        and cu12["onnxruntime"] == "onnxruntime>=1.17"
    )


def test_torchs_cuda_is_read_from_its_version() -> None:
    assert pins.installed_torch_cuda() in (None, "13.0", "12.8", "12.6", "12.4", "12.1", "11.8")


def test_tensorrt_requirement_has_an_upper_bound() -> None:
    """TensorRT majors beyond what backends.trt.precision knows are refused by the metadata too."""
    for build in pins.ORT_GPU_BUILDS:
        trt = _gpu_requirements(build.extra)[f"tensorrt-cu{build.cuda}"]
        assert trt.specifier.contains("10.16.1.11") and not trt.specifier.contains("12.0.0")


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
        "/venv/bin/python -m pip install 'onnxruntime-gpu>=1.27,<1.32'"
    )


def test_cuda_asked_of_the_cpu_package_names_the_swap(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _dist(site, "onnxruntime", "1.22.0")
    dists = install.installed([str(site)])
    providers = ["AzureExecutionProvider", "CPUExecutionProvider"]
    problem = install.diagnose(dists, want_cuda=True, providers=providers, python="py")
    assert problem is not None and "built without CUDAExecutionProvider" in problem
    assert problem.endswith(
        "Fix: py -m pip uninstall -y onnxruntime && py -m pip install 'onnxruntime-gpu>=1.27,<1.32'"
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


# ---- issue 24, point 3: a provider that is listed but does not load -------------------------------------

CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
GPU_131 = install.OrtDist("onnxruntime-gpu", "1.31.1", "/venv/lib/python3.12/site-packages")


def test_the_probe_is_a_real_session_that_reports_what_loaded() -> None:
    """``get_available_providers()`` lists what onnxruntime was built with; a session's ``get_providers()``
    what loaded. Here (CPU onnxruntime) a session asked for CUDA runs on the CPU alone."""
    assert install.probe_session(CUDA_PROVIDERS) == ["CPUExecutionProvider"]
    assert install.probe_session(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_a_listed_provider_that_does_not_load_is_exit_3_with_the_fix() -> None:
    """Main's check read ``get_available_providers()`` only: onnxruntime-gpu lists CUDAExecutionProvider
    even when cuDNN is missing, so set-up printed "onnxruntime ok" on a broken install. The probe's session
    (a real one; here the CPU build stands for the broken GPU one) must keep the provider."""
    with pytest.raises(
        BrokenInstallError, match=r"CUDAExecutionProvider is listed by .* but did not load"
    ) as info:
        install.check("cuda:0", providers=CUDA_PROVIDERS, probe=True)
    assert info.value.exit_code == 3
    assert "the session runs on ['CPUExecutionProvider']. Fix: " in str(info.value)
    assert "pip install --force-reinstall 'onnxruntime-gpu[cuda,cudnn]==" in str(info.value)
    assert install.check("cuda:0", providers=CUDA_PROVIDERS, probe=lambda asked: asked) == CUDA_PROVIDERS
    assert install.check("cpu", probe=True) is None  # the CPU needs no probe


def test_the_message_names_the_missing_libraries_and_the_command() -> None:
    plan = libs.LibraryPlan(missing=["libcudnn.so.9"])
    problem = install.provider_problem(
        ["CUDAExecutionProvider"], ["CPUExecutionProvider"], {"CUDAExecutionProvider": plan},
        GPU_131, 13, python="/venv/bin/python",
    )  # fmt: skip
    assert problem == (
        "CUDAExecutionProvider is listed by onnxruntime-gpu 1.31.1 but did not load (it needs "
        "libcudnn.so.9, found nowhere pip puts them); the session runs on ['CPUExecutionProvider']. Fix: "
        "/venv/bin/python -m pip install 'onnxruntime-gpu[cuda,cudnn]==1.31.1'"
    )
    kept = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert install.provider_problem(["CUDAExecutionProvider"], kept, {}, GPU_131, 13) is None


def test_the_cuda_build_is_read_from_onnxruntimes_build_info() -> None:
    assert install.parse_cuda_build("package_name = 'onnxruntime-gpu'\ncuda_version = '13.0'\n") == 13
    assert install.parse_cuda_build("package_name = 'onnxruntime'\n") is None
    assert install.cuda_build() is None  # this venv's CPU onnxruntime


# ---- issue 24, point 4: pip's CUDA and TensorRT libraries found for the providers -----------------------

TRT_PROVIDER_NEEDS = [  # onnxruntime-gpu 1.31.1's libonnxruntime_providers_tensorrt.so (readelf -d)
    "libcublas.so.13", "libdl.so.2", "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudart.so.13",
    "librt.so.1", "libcudnn.so.9", "libpthread.so.0", "libstdc++.so.6", "libc.so.6",
]  # fmt: skip


def _pip_layout(site: Path, trt_major: int) -> dict[str, list[Path]]:
    """The folders pip's CUDA 13 and TensorRT wheels create (empty files: only names and places matter)."""
    for rel in (
        "nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcublasLt.so.13",
        "nvidia/cu13/lib/libcudart.so.13", "nvidia/cudnn/lib/libcudnn.so.9",
        f"tensorrt_libs/libnvinfer.so.{trt_major}", f"tensorrt_libs/libnvonnxparser.so.{trt_major}",
    ):  # fmt: skip
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"")
    return libs.pip_libraries([site])


def test_the_tensorrt_provider_gets_pip_tensorrt_of_its_major(tmp_path: Path) -> None:
    """Main never loaded pip's TensorRT: onnxruntime's provider opens libnvinfer.so.10 by name and the
    loader does not search site-packages/tensorrt_libs. The plan picks each file, dependencies first."""
    available = _pip_layout(tmp_path / "site", 10)
    path, problem = libs.trt_library(TRT_PROVIDER_NEEDS, available)
    assert problem is None and path == tmp_path / "site" / "tensorrt_libs" / "libnvinfer.so.10"
    cublas = available["libcublas.so.13"][0]
    needs_of = {cublas: ["libcublasLt.so.13", "libc.so.6"]}
    plan = libs.library_plan(TRT_PROVIDER_NEEDS, available, needs_of, loaded=["libcudart.so.13"])
    names = [p.name for p in plan.load]
    assert names == [
        "libcublasLt.so.13", "libcublas.so.13", "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudnn.so.9"
    ]  # fmt: skip
    assert plan.missing == []  # system libraries and the one already loaded are not looked for


def test_tensorrt_of_another_major_is_named_with_the_fix(tmp_path: Path) -> None:
    """What ``tensorrt>=10,<12`` gave main: TensorRT 11, which onnxruntime-gpu's provider cannot open."""
    available = _pip_layout(tmp_path / "site", 11)
    path, problem = libs.trt_library(TRT_PROVIDER_NEEDS, available)
    assert path is None and problem is not None
    assert "opens libnvinfer.so.10 (TensorRT 10), but only libnvinfer.so.11" in problem
    plan = libs.library_plan(TRT_PROVIDER_NEEDS, available)
    assert plan.missing == ["libnvinfer.so.10", "libnvonnxparser.so.10"]
    assert libs.fix_for(plan.missing, "1.31.1", 13, "py") == "py -m pip install 'tensorrt-cu13>=10,<11'"
    both = libs.fix_for(["libcudnn.so.9", "libnvinfer.so.10"], "1.31.1", 13, "py")
    assert both == (
        "py -m pip install 'onnxruntime-gpu[cuda,cudnn]==1.31.1' && py -m pip install 'tensorrt-cu13>=10,<11'"
    )


def test_elf_needed_reads_real_libraries() -> None:
    """The DT_NEEDED reader on this venv's onnxruntime (readelf -d lists the same sonames)."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    library = next(capi.glob("libonnxruntime.so*"))
    needed = libs.elf_needed(library)
    assert "libstdc++.so.6" in needed and "libc.so.6" in needed
    assert libs.elf_needed(ROOT / "pyproject.toml") == []  # no ELF: nothing
    assert libs.provider_library("CUDAExecutionProvider") is None  # the CPU build has no CUDA provider
    assert libs.infer_lib_version(101601) == "10.16.1" and libs.infer_lib_version(8601) == "8.6.1"


def test_cudnn_is_planned_although_the_cuda_provider_does_not_link_it(tmp_path: Path) -> None:
    """onnxruntime-gpu 1.31's CUDA provider opens cuDNN by name while it runs (its DT_NEEDED lists only
    cuBLAS, cuRAND and the runtime): without cuDNN the session is created and a convolution fails later."""
    required, optional = libs.opened_at_run_time("CUDAExecutionProvider", 13)
    assert required == ["libcudnn.so.9"] and optional == ["libcufft.so.12", "libnvrtc.so.13"]
    assert libs.opened_at_run_time("CUDAExecutionProvider", 12)[1] == ["libcufft.so.11", "libnvrtc.so.12"]
    assert libs.opened_at_run_time("TensorrtExecutionProvider", 13) == ([], [])
    cuda_needs = [
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcudart.so.13",
        "libcuda.so.1",
    ]
    site = tmp_path / "site"
    for rel in ("nvidia/cu13/lib/libcublasLt.so.13", "nvidia/cu13/lib/libcublas.so.13",
                "nvidia/cu13/lib/libcurand.so.10", "nvidia/cu13/lib/libcudart.so.13"):  # fmt: skip
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"")
    plan = libs.library_plan([*cuda_needs, *required], libs.pip_libraries([site]))
    assert plan.missing == ["libcudnn.so.9"] and len(plan.load) == 4  # the driver's libcuda is not pip's


def test_pack_stops_up_front_when_the_listed_cuda_provider_does_not_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI, as on a box whose onnxruntime-gpu lists CUDAExecutionProvider but cannot load it
    (here: the CPU build made to list it; the probe session is real and drops it). Main built the package
    and failed its verification without a fix; now the preflight stops before anything is built, exit 3."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    from packager.cli import main

    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CUDA_PROVIDERS)
    out = tmp_path / "out"
    args = ["mtcnn", "--variants", "onet", "--backends", "onnx", "--devices", "cuda", "--no-latency"]
    code = main([*args, "--out", str(out), "--quiet", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err and not list(out.glob("*.zip"))
    [failure] = json.loads((out / "report.json").read_text())["failures"]
    assert "CUDAExecutionProvider is listed by onnxruntime" in failure["message"]
    assert "but did not load" in failure["message"] and "Fix: " in failure["message"]
