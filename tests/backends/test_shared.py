"""Backend-independent contracts: devices, missing extras, user model classes, output flattening, and the
TensorRT engine compatibility check (pure logic over trt_config.json, no GPU needed)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import backends.device
from backends.errors import (
    BrokenInstallError,
    DeviceUnavailableError,
    InvalidDeviceError,
    MissingExtraError,
    ModelLoadError,
)
from backends.extras import require
from backends.outputs import flatten_outputs, run_model
from backends.registry import BACKENDS, get_backend, load_model_class
from backends.trt.compat import LocalGPU, check_compatible
from tests.backends.helpers import minilm_dir, mtcnn_dir


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 0)


def test_registry_names_and_wire_names():
    assert {n: s.wire_name for n, s in BACKENDS.items()} == {
        "hf": "hugging-face",
        "onnx": "onnx",
        "torch": "torch",
        "torch-script": "torch-script",
        "trt": "trt",
    }
    for spec in BACKENDS.values():  # every exporter and default class imports without its optional library
        spec.load_exporter()
        load_model_class(spec.default_model_class("embedding"))


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
@pytest.mark.parametrize(
    "model_class",
    [
        "backends.hf.model:HFEmbeddingModel",
        "backends.torch.model:TorchModel",
        "backends.torchscript.model:TorchScriptModel",
        "backends.onnx.model:OnnxModel",
        "backends.trt.model:TrtModel",
        "mtcnn_nets:MTCNNNet",
    ],
)
def test_cuda_without_cuda_is_an_error(no_cuda, tmp_path, spec, model_class):
    """Every class validates the device before doing work: no silent CPU run."""
    package = tmp_path / "pkg"
    package.mkdir()
    for name in (
        "config.json", "model.safetensors", "torch_config.json", "model.pt", "weights.onnx",
        "engine.plan", "trt_config.json", "onet.pt",
    ):  # fmt: skip
        (package / name).write_text("{}")
    with pytest.raises(DeviceUnavailableError, match="CUDA"):
        load_model_class(model_class).from_pretrained(package, device=spec, variant="onet")


def test_bad_device_string():
    """A string that is no device is bad input (exit 2), not a missing GPU (exit 3)."""
    with pytest.raises(InvalidDeviceError, match="accepted: cpu, cuda, cuda:N") as info:
        backends.device.resolve_device("gpu0")
    assert info.value.exit_code == 2 and not isinstance(info.value, DeviceUnavailableError)


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(MissingExtraError, match=r"weightpack\[gpu\]") as info:
        require("tensorrt", "building a TensorRT engine")
    assert info.value.extra == "gpu" and info.value.exit_code == 3


def test_trt_exporter_without_tensorrt_names_gpu_extra(monkeypatch, tmp_path):
    from backends.base import ExportRequest

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    request = ExportRequest(tmp_path, tmp_path, "a", "b", "embedding", {}, {}, "x:Y")
    with pytest.raises(MissingExtraError, match=r"pip install 'weightpack\[gpu\]'"):
        get_backend("trt").load_exporter()(request)


def test_onnx_on_cuda_without_onnxruntime_gpu_names_the_swap(monkeypatch, tmp_path):
    """With a CUDA device present but CPU-only onnxruntime, asking for CUDA names the exact swap to
    onnxruntime-gpu (installing it beside the CPU package would break both)."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 1)
    (tmp_path / "weights.onnx").write_bytes(b"")
    with pytest.raises(BrokenInstallError, match=r"pip uninstall -y onnxruntime && .*onnxruntime-gpu"):
        load_model_class("backends.onnx.model:OnnxModel").from_pretrained(tmp_path, device="cuda")


def test_onnx_providers_for_devices(tmp_path):
    from backends.onnx.model import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    trt = providers_for("cuda:0", tensorrt=True, engine_cache_dir=tmp_path / "cache", trt_fp16=True)
    name, options = trt[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_engine_cache_enable"] is True and options["trt_fp16_enable"] is True
    assert options["trt_engine_cache_path"] == str(tmp_path / "cache") and (tmp_path / "cache").is_dir()
    assert [p[0] if isinstance(p, tuple) else p for p in trt[1:]] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


# ---- any user class -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Detection:
    box: np.ndarray
    score: float
    label: str = "face"


@dataclasses.dataclass
class Prediction:
    boxes: np.ndarray
    scores: np.ndarray
    meta: dict


class DetectionLibraryModel:
    """Stands in for a class from an existing inference library: no PackageModel base, returns a list of
    objects with array fields from ``__call__`` (no ``infer``)."""

    @classmethod
    def from_pretrained(cls, path, device="cpu", **kwargs):
        return cls()

    def __call__(self, image):
        n = image.shape[0]
        return [Detection(box=np.arange(4, dtype=np.float32) + i, score=0.5 + i) for i in range(n)]


class DataclassModel:
    @classmethod
    def from_pretrained(cls, path, device="cpu", **kwargs):
        return cls()

    def infer(self, inputs):
        x = inputs["image"]
        return Prediction(boxes=x[:, :4], scores=x.sum(axis=1), meta={"logits": x * 2})


def test_user_class_list_of_objects_is_flattened():
    cls = load_model_class(f"{__name__}:DetectionLibraryModel")
    out = run_model(cls.from_pretrained("unused"), {"image": np.zeros((2, 3), np.float32)})
    assert sorted(out) == ["output.0.box", "output.0.score", "output.1.box", "output.1.score"]
    np.testing.assert_array_equal(out["output.1.box"], [1, 2, 3, 4])
    assert out["output.1.score"] == 1.5


def test_user_class_dataclass_output_is_flattened():
    cls = load_model_class(f"{__name__}:DataclassModel")
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    out = run_model(cls.from_pretrained("unused"), {"image": x})
    assert sorted(out) == ["boxes", "meta.logits", "scores"]
    np.testing.assert_array_equal(out["meta.logits"], x * 2)


def test_flatten_torch_tuple_and_nested():
    import torch

    out = flatten_outputs((torch.ones(2), {"a": [torch.zeros(1), torch.ones(1)]}))
    assert sorted(out) == ["output.0", "output.1.a.0", "output.1.a.1"]


def test_recipe_model_class_is_used_by_the_pipeline(tmp_path):
    """A recipe's ``model_class = "module:Class"`` loads a user class for a backend's packages."""
    from packager.recipes import load_recipe

    recipe = tmp_path / "fam.toml"
    recipe.write_text(
        '[family]\narchitecture = "fam"\ntask = "object-detection"\n'
        f'[variants.a]\nsource = "{tmp_path}"\n'
        f'[backends.torch]\nmodel_class = "{__name__}:DataclassModel"\n'
        '[inputs]\nkind = "tensor"\ntensors = [{ name = "image", shape = [2, 6] }]\n'
    )
    parsed = load_recipe(recipe)
    assert parsed.backends["torch"].model_class == f"{__name__}:DataclassModel"
    assert load_model_class(parsed.backends["torch"].model_class) is DataclassModel


def test_variant_inputs_override_family_inputs():
    from packager.recipes import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "mtcnn.toml")
    assert recipe.inputs_for("pnet").tensors[0].shape == [2, 3, 120, 160]
    assert recipe.inputs_for("rnet").tensors[0].shape == [16, 3, 24, 24]
    assert set(recipe.backends) == {"torch", "torch-script", "onnx"}


def test_hf_task_auto_classes(tmp_path):
    from backends.hf.model import auto_class_for_task

    (tmp_path / "config.json").write_text('{"num_channels": 3}')
    assert auto_class_for_task("classification", tmp_path) == "AutoModelForImageClassification"
    assert auto_class_for_task("classification", minilm_dir()) == "AutoModelForSequenceClassification"
    assert auto_class_for_task("object-detection", tmp_path) == "AutoModelForObjectDetection"
    assert auto_class_for_task("embedding", minilm_dir()) == "AutoModel"
    assert get_backend("hf").default_model_class("classification") == "backends.hf.model:HFTaskModel"


@pytest.mark.slow
def test_hf_sequence_classification_package_loads(tmp_path):
    """A (randomly initialised, tiny) BERT classifier loads through HFTaskModel with the right head."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=3, architectures=["BertForSequenceClassification"],
    )  # fmt: skip
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    model = load_model_class("backends.hf.model:HFTaskModel").from_pretrained(tmp_path, task="classification")
    out = model.infer({"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones((2, 5), np.int64)})
    assert out["logits"].shape == (2, 3)


def test_mtcnn_needs_a_net(tmp_path):
    if mtcnn_dir() is None:
        pytest.skip("facenet-pytorch not installed")
    with pytest.raises(ModelLoadError, match="which MTCNN net"):
        load_model_class("mtcnn_nets:MTCNNNet").from_pretrained(mtcnn_dir())


# ---- TensorRT engine compatibility ----------------------------------------------------------------------

BUILT = {
    "trt_version": "10.3.0.26",
    "cuda_device_cc": "8.9",
    "cuda_device_type": "NVIDIA L4",
    "version_compatible": False,
    "hardware_compatibility": "none",
}


def test_trt_same_gpu_and_version_loads():
    assert check_compatible(BUILT, LocalGPU("10.3.0.26", "8.9", "NVIDIA L4")) == []


def test_trt_other_compute_capability_is_refused():
    with pytest.raises(ModelLoadError, match=r"compute capability 8\.9 \(NVIDIA L4\).*H100.*9\.0"):
        check_compatible(BUILT, LocalGPU("10.3.0.26", "9.0", "NVIDIA H100 80GB HBM3"))


def test_trt_other_version_is_refused():
    with pytest.raises(
        ModelLoadError, match=r"built with TensorRT 10\.3\.0\.26 but TensorRT 10\.8\.0 is installed"
    ):
        check_compatible(BUILT, LocalGPU("10.8.0", "8.9", "NVIDIA L4"))


def test_trt_version_compatible_allows_any_later_version():
    """TensorRT's rule: a version-compatible engine runs on the building version and any later one, later
    majors included (10.x engines on 11.x), never an older one."""
    config = {**BUILT, "version_compatible": True}
    assert check_compatible(config, LocalGPU("10.8.0", "8.9", "NVIDIA L4")) == []
    assert check_compatible(config, LocalGPU("11.0.0", "8.9", "NVIDIA L4")) == []
    with pytest.raises(ModelLoadError, match="version-compatible"):
        check_compatible(config, LocalGPU("10.1.0", "8.9", "NVIDIA L4"))


def test_trt_ampere_plus_and_same_cc_other_gpu():
    config = {**BUILT, "hardware_compatibility": "ampere_plus"}
    assert check_compatible(config, LocalGPU("10.3.0.26", "9.0", "NVIDIA H100")) == []
    with pytest.raises(ModelLoadError, match="Ampere"):
        check_compatible(config, LocalGPU("10.3.0.26", "7.5", "Tesla T4"))
    warnings = check_compatible(BUILT, LocalGPU("10.3.0.26", "8.9", "NVIDIA RTX 4090"))
    assert warnings and "NVIDIA L4" in warnings[0]


def test_trt_config_without_versions_is_refused():
    with pytest.raises(ModelLoadError, match="rebuild"):
        check_compatible({}, LocalGPU("10.3.0", "8.9", "NVIDIA L4"))
