"""``--devices`` end to end (issue 13, part 3): resolved once, each CUDA device kept apart, the build device
handed to exporters in the ExportRequest, TensorRT building exactly there; ``tpu`` is bad input (exit 2).

Without a GPU, a second CUDA device is faked by patching the device count; the export then runs for real
through ``run_pack`` with a recording exporter (the torch exporter plus a note of the request's device),
and only verification, which would need the device itself, is left out.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import pytest

import backends.device
from backends.base import ExportRequest
from backends.device import export_device, resolve_devices
from backends.errors import DeviceUnavailableError, InvalidDeviceError
from backends.registry import get_backend, register, unregister
from packager import pipeline
from packager.package_check import PackageCheck
from packager.recipes import load_recipe
from packager.settings import RunSettings
from packager.verify import Verification

ROOT = Path(__file__).resolve().parents[2]
SEEN: list[ExportRequest] = []


def recording_export(request: ExportRequest):
    """The torch exporter, recording each request it gets."""
    SEEN.append(request)
    return get_backend("torch").load_exporter()(request)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 2)


def test_devices_resolve_once_and_stay_apart(two_gpus: None) -> None:
    assert resolve_devices(["cpu", "cuda", "cuda:0", "cuda:1"]) == ["cpu", "cuda:0", "cuda:1"]
    assert export_device(["cpu", "cuda:1", "cuda:0"]) == "cuda:1"
    assert export_device(["cpu"]) == "cpu"


def test_cuda_1_is_never_silently_cuda_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 1)
    with pytest.raises(DeviceUnavailableError, match=r"'cuda:1' does not exist: this machine has 1 CUDA"):
        resolve_devices(["cuda:1"])


def test_tpu_is_bad_input_not_a_missing_device() -> None:
    with pytest.raises(
        InvalidDeviceError, match=r"unknown device 'tpu' \(accepted: cpu, cuda, cuda:N\)"
    ) as info:
        resolve_devices(["cpu", "tpu"])
    assert info.value.exit_code == 2


def test_trt_builds_on_the_requested_index(two_gpus: None) -> None:
    """trt's exporter took ``options.get("device", "cuda")``: --devices cuda:1 built on cuda:0."""
    from backends.trt.exporter import build_index

    assert build_index("cuda:1") == 1 and build_index("cuda") == 0
    with pytest.raises(DeviceUnavailableError, match="built on a CUDA device, not the CPU"):
        build_index("cpu")


def test_trt_recipe_option_device_is_gone() -> None:
    """The build device comes from --devices only; a recipe ``device`` key is now an unknown option."""
    from backends.trt.spec import TrtOptions

    assert "device" not in {f.name for f in dataclasses.fields(TrtOptions)}


def test_trt_without_a_cuda_device_is_blocked_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trt preflight: TensorRT first (the extra to install), then a CUDA device to build on. A blocked
    backend's packages are recorded as failed (exit 3) without building; the others go on."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    blocked = pipeline.preflight(["torch", "trt"], ["cpu"])
    assert list(blocked) == ["trt"] and "pip install 'weightpack[gpu]'" in str(blocked["trt"])
    fake = types.SimpleNamespace(__version__="10.13.0", BuilderFlag=types.SimpleNamespace(FP16=1))
    monkeypatch.setitem(sys.modules, "tensorrt", fake)  # TensorRT "installed": the device rule decides
    blocked = pipeline.preflight(["trt"], ["cpu"])
    assert isinstance(blocked["trt"], DeviceUnavailableError) and blocked["trt"].exit_code == 3
    assert "--devices is cpu; pass --devices cuda:N" in str(blocked["trt"])
    fake.__version__ = "12.0.0"
    blocked = pipeline.preflight(["trt"], ["cuda:0"])
    assert "TensorRT 12.0.0 is not supported" in str(blocked["trt"])


def test_second_device_id_arrives_at_the_exporter(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = dataclasses.replace(
        get_backend("torch"), name="recording", exporter=f"{__name__}:recording_export"
    )
    register(spec)
    try:
        recipe_path = tmp_path / "mtcnn.toml"
        text = (ROOT / "recipes" / "mtcnn.toml").read_text()
        recipe_path.write_text(text.replace("[backends.torch]", "[backends.recording]", 1))
        recipe = load_recipe(recipe_path)
        verified: list[str] = []

        def verify(check: PackageCheck, goldens_dir: Path, ui: object) -> Verification:
            verified.append(check.device)
            return Verification(device=check.device)

        monkeypatch.setattr(pipeline, "verify_on_device", verify)
        SEEN.clear()
        options = pipeline.PackOptions(
            variants=["onet"],
            backends=["recording"],
            out_dir=tmp_path / "out",
            cache_dir=tmp_path / "cache",
            settings=RunSettings.of(devices=["cpu", "cuda:1"], measure_latency=False),
        )
        report = pipeline.run_pack(recipe, options)
    finally:
        unregister("recording")
    assert [r.device for r in SEEN] == ["cuda:1"]  # the id arrived, not cuda:0
    assert SEEN[0].batch_sizes == tuple(recipe.bench.batch_sizes)  # what a TensorRT profile must cover
    assert verified == ["cpu", "cuda:1"]  # each device verified on its own
    assert [p["backend"] for p in report.to_dict()["packages"]] == ["recording"]


@pytest.mark.parametrize(
    ("platform", "present", "expected"),
    [
        ("linux", set(), False),
        ("linux", {"/proc/driver/nvidia/version"}, True),
        ("linux", {"/dev/nvidiactl"}, True),
        ("linux", {"/dev/dxg"}, True),  # WSL2
        ("win32", set(), True),  # only torch can tell
        ("darwin", set(), True),
    ],
)
def test_cuda_driver_present_is_read_from_the_driver_files(
    platform: str, present: set[str], expected: bool
) -> None:
    assert backends.device.cuda_driver_present(platform, present.__contains__) is expected


def test_no_driver_means_no_cuda_device_without_importing_torch() -> None:
    """Asked in a fresh interpreter: on a Linux machine without an NVIDIA driver the count is 0 and torch
    stays unimported; where there is a driver, torch answers."""
    import subprocess

    code = (
        "import sys; from backends.device import cuda_device_count, cuda_driver_present; "
        "n = cuda_device_count(); print(n, cuda_driver_present(), 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    count, driver, imported = int(out[0]), out[1] == "True", out[2] == "True"
    if not driver:
        assert (count, imported) == (0, False)
    else:
        assert imported, "with a driver present, torch decides"
