"""Issue 24 on a GPU: onnxruntime-gpu's providers load with the libraries pip put beside torch, the
TensorRT model class holds bf16 and data-dependent outputs and keeps its input copy out of device time.
The decisions are tested on the CPU (tests/unit/test_ort_install.py, tests/unit/test_trt_decisions.py);
these run on the lent box, onnxruntime-gpu carried in parts by scripts/gpu_check.sh, and skip with the
reason where a library is absent (TensorRT cannot be carried there)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch"),
]


def _ort_lists(provider: str) -> bool:
    import onnxruntime

    return provider in onnxruntime.get_available_providers()


# ---- onnxruntime-gpu ------------------------------------------------------------------------------------


def test_the_cuda_provider_loads_and_its_libraries_are_found() -> None:
    if not _ort_lists("CUDAExecutionProvider"):
        pytest.skip("onnxruntime-gpu is not installed (no CUDAExecutionProvider listed)")
    from backends.onnx import install, libs

    plan = libs.plan_for("CUDAExecutionProvider")
    loads = [str(p) for p in plan.load] if plan else None
    print(f"GPU-ORT cuda plan: load={loads} missing={plan and plan.missing}")
    assert plan is not None and plan.missing == [], plan
    got = install.check("cuda:0", probe=True)
    assert got is not None and got[0] == "CUDAExecutionProvider", got


def test_the_tensorrt_provider_loads_pip_tensorrt() -> None:
    if not _ort_lists("TensorrtExecutionProvider"):
        pytest.skip("onnxruntime-gpu is not installed (no TensorrtExecutionProvider listed)")
    from backends.onnx import install, libs

    plan = libs.plan_for("TensorrtExecutionProvider")
    if plan is not None and any(libs.trt_major(s) for s in plan.missing):
        pytest.skip(
            f"TensorRT is not installed for onnxruntime's TensorRT provider: {plan.note or plan.missing}"
        )
    got = install.check("cuda:0", probe=True, tensorrt=True)
    assert got is not None and got[0] == "TensorrtExecutionProvider", got
    assert install.tensorrt_version()


# ---- TensorRT engines built here from tiny graphs -------------------------------------------------------


def _trt():
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("tensorrt is not installed (weightpack[gpu]; it cannot be carried to the lent box)")
    import tensorrt

    return tensorrt


def _model(graph, shapes: dict[str, tuple[list[int], list[int], list[int]]]):
    """A TrtModel around an engine built from the ONNX ``graph`` with one optimisation profile."""
    import onnx

    from backends.trt.model import TrtModel
    from backends.trt.streams import dedicated_stream

    trt = _trt()
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly is None else 1 << int(strongly))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [
        str(parser.get_error(i)) for i in range(parser.num_errors)
    ]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(plan))
    names = {
        "input_names": [i.name for i in graph.input],
        "output_names": [o.name for o in graph.output],
        "inputs": [{"name": n, "min": s[0], "max": s[2]} for n, s in shapes.items()],
    }
    wrapped = TrtModel(engine, engine.create_execution_context(), names, Path("."), "cuda:0",
                       dedicated_stream("cuda:0"))  # fmt: skip
    wrapped._trt = trt
    return wrapped


def test_a_data_dependent_output_comes_back_with_its_shape() -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("where", TensorProto.INT64, [2, "found"])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["mask"]),
        helper.make_node("NonZero", ["mask"], ["where"]),
    ]
    graph = helper.make_graph(nodes, "nonzero", [x], [y], [zero])
    model = _model(graph, {"x": ([1, 4], [4, 4], [8, 4])})
    feed = np.array([[1, -1, 0, 2], [-3, 4, 0, 0], [0, 0, 0, 5]], np.float32)
    out = model.infer({"x": feed})["where"]
    np.testing.assert_array_equal(out, np.stack(np.nonzero(feed > 0)))  # 4 found, known only after running
    sparse = model.infer({"x": np.where(feed > 3, feed, -1).astype(np.float32)})["where"]
    assert sparse.shape == (2, 2)


def test_a_bf16_output_is_a_bf16_tensor() -> None:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["n", 8])
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16)], "bf16", [x], [y]
    )
    model = _model(graph, {"x": ([1, 8], [2, 8], [4, 8])})
    out = model.run({"x": np.full((2, 8), 1.5, np.float32)})["y"]
    assert out.dtype == torch.bfloat16 and tuple(out.shape) == (2, 8) and float(out[0, 0]) == 1.5


def test_device_time_leaves_the_input_copy_out() -> None:
    """256 MiB in, 256 bytes out: the pageable host-to-device copy dominates the host figure; the device
    figure is the engine's reduction alone (main timed the copy as device work)."""
    from onnx import TensorProto, helper

    from bench.latency import LatencyConfig, measure_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 1 << 20])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])
    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=0)], "max", [x], [y]
    )
    model = _model(graph, {"x": ([64, 1 << 20], [64, 1 << 20], [64, 1 << 20])})
    feed = {"x": np.random.default_rng(0).standard_normal((64, 1 << 20), dtype=np.float32)}
    cfg = LatencyConfig(warmup_iters=3, warmup_s=0.0, min_iters=10, min_time_s=0.2, max_time_s=10.0)
    result = measure_model(model, "cuda:0", [feed], cfg, overhead=False)
    host, dev = np.median(result.samples_ms), np.median(result.device_samples_ms)
    print(f"GPU-TIMING trt staged-input host={host:.3f}ms device={dev:.3f}ms")
    assert dev < 0.5 * host
