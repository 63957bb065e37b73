"""The backend contract: every registered backend declares itself completely, and the rest of weightpack
reads those declarations (names, options, tolerances, streams, extras, version key)."""

from __future__ import annotations

import pytest

from backends.errors import MissingExtraError, OptionError
from backends.extras import extra_for, require
from backends.options import BackendOptions
from backends.registry import BACKENDS, backend_names, find_backend, get_backend, register, unregister
from backends.spec import BackendSpec, Tolerance, load_object
from bench.latency import uses_torch_stream
from bench.parity import default_tolerance


@pytest.mark.parametrize("name", ["hf", "onnx", "torch", "torch-script", "trt"])
def test_builtin_backend_declares_everything(name: str) -> None:
    spec = get_backend(name)
    assert spec.name == name
    assert spec.package_type.endswith("-model-package-v1")
    assert issubclass(spec.options, BackendOptions)
    assert spec.options.parse({}).quantization == "fp32"  # every option has a default
    assert callable(load_object(spec.exporter))
    assert spec.default_model_class("embedding")
    assert spec.version_libraries  # upgrading its libraries must rebuild its packages
    assert find_backend(spec.wire_name) is spec and find_backend(spec.manifest_type) is spec


def test_default_reference_is_declared_by_a_backend() -> None:
    from backends.registry import reference_class

    assert reference_class("embedding") == "backends.hf.model:HFEmbeddingModel"
    assert reference_class("vlm") == "backends.hf.model:HFModel"


def test_one_backend_three_names() -> None:
    assert backend_names("hugging-face") == {"hf", "hugging-face"}
    assert backend_names("hf") == {"hf", "hugging-face"}
    assert backend_names("unknown-thing") == {"unknown-thing"}
    with pytest.raises(KeyError, match=r"unknown backend 'tensorflow' \(accepted: hf, onnx"):
        get_backend("tensorflow")


def test_tolerance_floors_come_from_the_spec() -> None:
    assert default_tolerance("float32", "onnx") == (1e-4, 1e-4)
    assert default_tolerance("float32", "hugging-face") == default_tolerance("float32", "hf")
    assert default_tolerance("float32", "trt") == (1e-3, 1e-3)
    assert default_tolerance("float16", "onnx", "fp16") == (1e-2, 1e-2)
    assert default_tolerance("int64", "trt") == (0.0, 0.0)


def test_torch_stream_is_declared_by_the_backend() -> None:
    class Named:
        def __init__(self, backend: str) -> None:
            self.backend = backend

    assert uses_torch_stream(Named("torch-script"))
    assert not uses_torch_stream(Named("onnx"))
    own = Named("onnx")
    own.torch_stream = True  # a model class may say so itself
    assert uses_torch_stream(own)


def test_registered_backend_is_seen_everywhere() -> None:
    spec = register(
        BackendSpec(
            name="fake",
            wire_name="fake-wire",
            exporter="json:dumps",
            tolerance=Tolerance(5e-3, 6e-3),
            extras={"fake_runtime_module": ("fake-extra", "fake-runtime")},
        )
    )
    try:
        assert BACKENDS["fake"] is spec
        assert default_tolerance("float32", "fake-wire") == (5e-3, 6e-3)
        assert extra_for("fake_runtime_module") == ("fake-extra", "fake-runtime")
        with pytest.raises(MissingExtraError, match=r"pip install 'weightpack\[fake-extra\]'"):
            require("fake_runtime_module", "running the fake backend")
    finally:
        unregister("fake")
    assert "fake" not in BACKENDS


def test_options_refuse_unknown_keys_and_wrong_types() -> None:
    onnx = get_backend("onnx")
    with pytest.raises(OptionError, match=r"field 'opsett': is not a known option \(accepted: attention, "):
        onnx.parse_options({"opsett": 17})
    with pytest.raises(OptionError, match=r"field 'copy_files\[1\]': has type int \(accepted: str\)"):
        onnx.parse_options({"copy_files": ["*.json", 3]})
    trt = get_backend("trt").parse_options({"static_batch_size": 4, "onnx": {"opset": 17}})
    assert trt.onnx_options().static_batch_size == 4  # a static engine parses a static graph
    assert trt.onnx_options().opset == 17
