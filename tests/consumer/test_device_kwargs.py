"""The consumer calls ``from_pretrained(dir, device=torch.device(...), onnx_execution_providers=...,
default_onnx_trt_options=..., engine_host_code_allowed=...)``: every weightpack model class must take that
call as it is (issue 9: ``AttributeError: 'torch.device' object has no attribute 'strip'``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import backends.device
from backends.device import device_string, resolve_device
from backends.errors import DeviceUnavailableError
from tests.backends.helpers import export_package, load, mtcnn_dir

# What inference_models.models.auto_loaders.core passes to every class besides the path.
CONSUMER_KWARGS = {
    "onnx_execution_providers": None,
    "default_onnx_trt_options": True,
    "engine_host_code_allowed": True,
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (torch.device("cpu"), "cpu"),
        ("cpu", "cpu"),
        (" CPU ", "cpu"),
        (torch.device("cuda"), "cuda"),
        (torch.device("cuda", 1), "cuda:1"),
        ("cuda:1", "cuda:1"),
    ],
)
def test_device_string_accepts_str_and_torch_device(given, expected):
    assert device_string(given) == expected


def test_device_string_refuses_other_types():
    with pytest.raises(ValueError, match=r"device 42 .*accepted: 'cpu', 'cuda', 'cuda:N' or a torch.device"):
        device_string(42)


def test_resolve_torch_cuda_device_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(backends.device, "cuda_device_count", lambda: 0)
    assert resolve_device(torch.device("cpu")) == "cpu"
    with pytest.raises(DeviceUnavailableError, match="device 'cuda:0' was asked for but this machine"):
        resolve_device(torch.device("cuda", 0))


@pytest.fixture(scope="module")
def onet(tmp_path_factory):
    data = mtcnn_dir()
    if data is None:
        pytest.skip("facenet-pytorch (MTCNN weights) is not installed; scripts/setup.sh installs it")
    return data


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        ("torch", {"factory": "mtcnn_nets:build", "factory_kwargs": {"net": "{variant}"}}),
        ("torch-script", {}),
        ("onnx", {}),
    ],
)
def test_model_classes_take_the_consumers_call(tmp_path, onet, backend, options):
    sample = {"image": np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 48)).astype(np.float32)}
    unzipped, result = export_package(
        tmp_path,
        backend,
        onet,
        sample,
        options=options,
        reference_class="mtcnn_nets:MTCNNNet",
        variant="onet",
        task="object-detection",
    )
    model = load(unzipped, result, device=torch.device("cpu"), **CONSUMER_KWARGS)
    assert model.device == "cpu"
    outputs = model.infer(sample)
    assert outputs and all(np.isfinite(v).all() for v in outputs.values())


def test_reference_class_takes_a_torch_device(onet):
    from mtcnn_nets import MTCNNNet

    model = MTCNNNet.from_pretrained(onet, device=torch.device("cpu"), variant="onet", **CONSUMER_KWARGS)
    assert model.device == "cpu"
