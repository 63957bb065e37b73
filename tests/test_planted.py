"""Issue 22, point 5: planted regressions are real extra work inside the model's forward, on the device that
runs it (a torch module's forward, an ONNX graph's nodes), at one batch size or in one call out of N (a
tail), with the ratio they produce measured; outputs stay bit-identical. Which work ran is read from the
runtimes themselves (torch's function-mode dispatch, onnxruntime's profiler), never from timings (the
suite runs on a busy machine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.planted import Plant, PlantedModel, plant

torch = pytest.importorskip("torch")


def _torch_model(script: bool = False):
    from backends.torch.model import TorchModel

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    if script:
        module = torch.jit.script(module)
    return TorchModel(module, {"input_names": ["x"], "output_names": ["y"]}, Path("."), "cpu")


def _feed(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)}


def _mm_calls(model, feed) -> int:
    """torch.mm calls made by one call of the model (the planted chain's; its Linear layers call
    F.linear), counted by torch's own function-mode dispatch."""
    with _CountMM() as mode:
        model.infer(feed)
    return mode.calls


class _CountMM(torch.overrides.TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.mm
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("script", [False, True], ids=["eager", "torchscript"])
def test_compute_plant_runs_matrix_products_inside_the_forward_of_one_batch_size(script: bool) -> None:
    model = _torch_model(script)
    before = {bs: model.infer(_feed(bs))["y"] for bs in (1, 4)}
    record = plant(model, Plant.parse("compute:0.5@4"), _feed(4), "cpu")
    assert record["units"] >= 1 and record["unit_ms"] > 0 and record["clean_ms"] > 0
    assert record["ratio_in_process"] > 0 and "torch module" in record["where"]
    assert _mm_calls(model, _feed(4)) == record["units"]  # the work, inside the forward, at batch 4
    assert _mm_calls(model, _feed(1)) == 0  # ... and not at batch 1: one row
    for bs in (1, 4):  # bit-identical outputs
        np.testing.assert_array_equal(model.infer(_feed(bs))["y"], before[bs])


def test_tail_plant_works_in_one_call_out_of_n() -> None:
    model = _torch_model()
    record = plant(model, Plant.parse("tail:2@4/5"), _feed(4), "cpu")
    calls = [_mm_calls(model, _feed(4)) for _ in range(10)]
    assert calls == [0, 0, 0, 0, record["units"]] * 2
    assert record["kind"] == "tail" and record["every"] == 5


def _onnx_model(tmp_path: Path, profile: bool):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from backends.onnx.model import OnnxModel

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "weights.onnx"
    onnx.save(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(tmp_path / "ort-profile")
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return OnnxModel(session, tmp_path, "cpu")


def test_onnx_plant_adds_nodes_inside_the_graph_that_run_only_at_the_planted_batch(tmp_path: Path) -> None:
    import onnx

    model = _onnx_model(tmp_path, profile=False)
    before = {bs: model.infer(_feed(bs))["y"] for bs in (1, 4)}
    record = plant(model, Plant.parse("compute:0.5@4"), _feed(4), "cpu")
    assert "onnx graph" in record["where"] and record["units"] >= 1
    planted = onnx.load_from_string(model.session.inner._model_bytes)
    gate = next(n for n in planted.graph.node if n.op_type == "If")
    then = next(a.g for a in gate.attribute if a.name == "then_branch")
    assert sum(n.op_type == "MatMul" for n in then.node) == record["units"]
    assert [i.name for i in model.session.get_inputs()] == ["x"]  # the gate is fed, not declared
    for bs in (1, 4):
        np.testing.assert_array_equal(model.infer(_feed(bs))["y"], before[bs])


def test_onnx_planted_nodes_run_in_the_session_per_the_profiler(tmp_path: Path) -> None:
    """onnxruntime's own profiler: the planted MatMul nodes execute on a batch-4 call, not on batch 1."""
    model = _onnx_model(tmp_path, profile=True)
    record = plant(model, Plant.parse("compute:0.5@4"), _feed(4), "cpu")
    session = model.session.inner
    counts = []
    for bs in (4, 1):  # a fresh profiled session each: the sizing calls are left out
        model.session.inner = _restart_profiling(session, tmp_path, bs)
        model.infer(_feed(bs))
        events = json.loads(Path(model.session.inner.end_profiling()).read_text())
        counts.append(sum(e.get("cat") == "Node" and e["name"].startswith("wp_matmul_") for e in events))
    assert counts[0] >= record["units"] and counts[1] == 0, counts


def _restart_profiling(session, tmp_path: Path, tag: int):
    """A fresh session of the planted graph with profiling on (ORT profiles a session once)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / f"planted-{tag}")
    return onnxruntime.InferenceSession(
        session._model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def test_plant_specs_are_validated_with_what_would_be_accepted() -> None:
    assert Plant.parse("tail:2@8/20") == Plant("tail", 2.0, 8, 20)
    assert str(Plant.parse("compute:0.2@8")) == "compute:0.2@8"
    with pytest.raises(ValueError, match=r"expected KIND:FRACTION\[@BATCH\]\[/EVERY\].*compute, tail"):
        Plant.parse("spin:0.2")
    with pytest.raises(ValueError, match="FRACTION must be > 0 and EVERY >= 2"):
        Plant.parse("tail:0@8/1")
    with pytest.raises(ValueError, match="holds neither a torch module nor an onnxruntime session"):
        plant(PlantedModel(object()), Plant(), {}, "cpu")
