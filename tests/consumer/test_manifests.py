"""Every manifest weightpack emits, for every backend, parses with the consumer's own parsers and (off the
GPU) passes the consumer's own runtime filter on this machine. TRT manifests come from recorded engine
descriptions of a gpu-server and a Jetson."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from backends.errors import ExportError
from backends.trt.manifest import l4t_version, machine_specs, package_manifest
from packager.consumer import bridge
from tests.backends.helpers import export_package, minilm_dir, mtcnn_dir, text_inputs

ENGINES = json.loads((Path(__file__).parent / "data" / "trt_engines.json").read_text())


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> dict[str, dict]:
    """The packageManifest each exporter writes, from real exports (MTCNN O-net, MiniLM for hf)."""
    tmp = tmp_path_factory.mktemp("manifests")
    data = mtcnn_dir()
    if data is None:
        pytest.skip("facenet-pytorch (MTCNN weights) is not installed; scripts/setup.sh installs it")
    sample = {"image": np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 48)).astype(np.float32)}
    options = {
        "torch": {"factory": "mtcnn_nets:build", "factory_kwargs": {"net": "{variant}"}},
        "torch-script": {},
        "onnx": {},
        "onnx-static": {"static_batch_size": 2},
    }
    out = {}
    for name, opts in options.items():
        backend = name.removesuffix("-static")
        _, result = export_package(
            tmp / name, backend, data, sample, options=opts,
            reference_class="mtcnn_nets:MTCNNNet", variant="onet", task="object-detection",
        )  # fmt: skip
        out[name] = result.package_manifest
    upstream = minilm_dir()
    _, result = export_package(tmp / "hf", "hf", upstream, text_inputs(upstream, ["a b"]))
    out["hf"] = result.package_manifest
    for name, engine in ENGINES.items():
        out[f"trt-{name}"] = package_manifest(engine)
    return out


def test_torch_script_version_has_no_local_label(emitted):
    """Issue 9: ``2.13.0+cpu`` was rejected by the consumer on the very same torch 2.13.0."""
    version = emitted["torch-script"]["torchVersion"]
    assert "+" not in version, version


@pytest.mark.slow
def test_every_manifest_parses_and_fits_the_consumers_runtime(consumer, emitted):
    answers = bridge.ask("parse", {"packages": [{"packageManifest": m} for m in emitted.values()]})
    by_name = dict(zip(emitted, answers["packages"], strict=True))
    for name, answer in by_name.items():
        assert answer["parsed"], (name, answer.get("error"))
        if not name.startswith("trt-"):
            matches, reason = answer["runtime"]
            assert matches, (name, reason)
    assert by_name["trt-gpu-server"]["environment"]["driver_version"] == "570.133.20"
    jetson = by_name["trt-jetson"]["environment"]
    assert jetson["l4t_version"] == "36.4.3"
    assert jetson["jetson_product_name"] == "NVIDIA Jetson AGX Orin Developer Kit"


@pytest.mark.slow
def test_consumer_skips_what_weightpack_used_to_emit(consumer, emitted):
    """The old output, fed to the same parsers, is refused: a Jetson with gpu-server specs, a null driver."""
    jetson = copy.deepcopy(emitted["trt-jetson"])
    jetson["machineSpecs"] = {"type": "gpu-server-specs-v1", "driverVersion": "36.4.3", "osVersion": "x"}
    null_driver = copy.deepcopy(emitted["trt-gpu-server"])
    null_driver["machineSpecs"]["driverVersion"] = None
    labelled = dict(emitted["torch-script"], torchVersion="2.13.0+cpu")
    request = {"packages": [{"packageManifest": m} for m in (jetson, null_driver, labelled)]}
    answers = bridge.ask("parse", request)["packages"]
    assert [a["parsed"] for a in answers] == [False, False, True]
    assert "Jetson" in answers[0]["error"]
    runtime = answers[2]["runtime"]
    assert runtime[0] is False and "2.13.0+cpu" in runtime[1]


def test_null_driver_is_refused_not_written():
    engine = copy.deepcopy(ENGINES["gpu-server"])
    engine["machine"]["driver_version"] = None
    with pytest.raises(ExportError, match="the NVIDIA driver version is unknown, and the consumer silently"):
        package_manifest(engine)


def test_jetson_needs_its_l4t_version():
    machine = dict(ENGINES["jetson"]["machine"], l4t_version=None)
    with pytest.raises(ExportError, match="the Jetson L4T version is unknown"):
        machine_specs(machine)


def test_l4t_version_is_read_like_the_consumer(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    assert l4t_version(release) == "36.4.3"
    assert l4t_version(tmp_path / "absent") is None
