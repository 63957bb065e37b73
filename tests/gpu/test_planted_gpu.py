"""Issue 22, point 5 on a GPU: a planted regression of a CUDA package is kernel-side work (matrix products
launched on the module's device inside its forward, or MatMul nodes of the ONNX graph under the CUDA
execution provider), seen as CUDA kernels by the profiler; the yardstick runs on the device too.
Skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch"),
]

from bench.planted import Plant, plant  # noqa: E402
from bench.yardstick import measure_yardstick  # noqa: E402


def _feed(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).standard_normal((batch, 64)).astype(np.float32)}


def _cuda_kernels(model, feed) -> int:
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        model.infer(feed)
        torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA)


def test_cuda_torch_plant_launches_kernels_inside_the_forward() -> None:
    from backends.torch.model import TorchModel

    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).eval().to("cuda:0")
    model = TorchModel(module, {"input_names": ["x"], "output_names": ["y"]}, Path("."), "cuda:0")
    base = _cuda_kernels(model, _feed(4))
    before = model.infer(_feed(4))["y"]
    record = plant(model, Plant.parse("compute:0.5@4"), _feed(4), "cuda:0")
    assert record["clock"] == "wall" and "on cuda:0" in record["where"]
    assert _cuda_kernels(model, _feed(4)) >= base + record["units"]  # kernel-side work
    assert _cuda_kernels(model, _feed(1)) <= base  # not at batch 1
    np.testing.assert_array_equal(model.infer(_feed(4))["y"], before)


def test_cuda_onnx_plant_runs_under_the_cuda_provider(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without CUDAExecutionProvider (install the gpu extra)")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from backends.onnx.model import OnnxModel

    w = numpy_helper.from_array(np.ones((64, 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=[w],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "weights.onnx"
    )
    model = OnnxModel.from_pretrained(tmp_path, device="cuda:0")
    before = model.infer(_feed(4))["y"]
    record = plant(model, Plant.parse("compute:0.5@4"), _feed(4), "cuda:0")
    assert model.session.inner.get_providers()[0] == "CUDAExecutionProvider" and record["units"] >= 1
    np.testing.assert_array_equal(model.infer(_feed(4))["y"], before)


def test_yardstick_runs_on_the_device() -> None:
    ys = measure_yardstick(2.0, 30, 1.0, "cuda:0")
    assert "torch.mm" in ys["kernel"] and ys["iterations"] >= 20 and ys["cov"] >= 0
