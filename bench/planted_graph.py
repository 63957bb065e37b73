"""Planted work inside an ONNX graph: the session a model class holds is rebuilt from its own graph plus a
chain of matrix products gated by a boolean input, on the same execution providers and options.

The added nodes: ``s = Sigmoid(ReduceMean(Cast(first input)))`` (a value the optimiser cannot fold, since
it depends on the feed), then inside an ``If(weightpack_plant)``: ``x = A * s`` followed by ``units``
``MatMul(x, Q)`` with ``Q`` orthogonal (the values stay bounded however long the chain), reduced and
multiplied by zero; the else branch is a constant zero. The graph's first floating-point output becomes
``output + z``: bit-identical results, and the work runs where the graph runs (onnxruntime's CPU kernels,
or CUDA kernels under the CUDA execution provider: a kernel-side regression on a GPU).
"""

from __future__ import annotations

from typing import Any

import numpy as np

GATE = "weightpack_plant"
SIZE_CPU, SIZE_GPU = 128, 512


def unit_ms(session: Any, device: str, clock: Any, units: int = 64) -> float:
    """Cost of one gated ``MatMul`` under ``session``'s providers and options: a graph holding only the
    chain, timed alone (median of 15 runs of ``units``)."""
    import onnxruntime
    from onnx import TensorProto, helper

    then_graph, else_graph = _branches(units, device, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["wp_s_in"], ["wp_s"]),
         helper.make_node("If", [GATE], ["wp_z"], then_branch=then_graph, else_branch=else_graph)],
        "weightpack_unit",
        [helper.make_tensor_value_info(GATE, TensorProto.BOOL, []),
         helper.make_tensor_value_info("wp_s_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("wp_z", TensorProto.FLOAT, [])],
    )  # fmt: skip
    opset = next((o.version for o in _opsets(session) if o.domain in ("", "ai.onnx")), 17)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = session.get_provider_options()
    providers = [(name, options.get(name, {})) for name in session.get_providers()]
    chain = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=session.get_session_options(), providers=providers
    )
    feed = {GATE: np.array(True), "wp_s_in": np.array(0.5, np.float32)}
    costs = []
    for i in range(17):
        start = clock()
        chain.run(None, feed)
        if i >= 2:
            costs.append((clock() - start) / 1e6)
    return float(np.median(costs)) / units


def _opsets(session: Any) -> list[Any]:
    import onnx

    path = getattr(session, "_model_path", None)
    model = onnx.load(path, load_external_data=False) if path else onnx.load_from_string(session._model_bytes)
    return list(model.opset_import)


def _branches(units: int, device: str, out_type: int) -> tuple[Any, Any]:
    """The ``If`` branches: ``units`` products of ``A * s`` with an orthogonal ``Q``, reduced, times zero;
    and a constant zero."""
    from onnx import helper, numpy_helper

    n = SIZE_GPU if device.startswith("cuda") else SIZE_CPU
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = rng.standard_normal((n, n)).astype(np.float32)
    then_nodes = [helper.make_node("Mul", ["wp_a", "wp_s"], ["wp_x0"])]
    for i in range(units):
        then_nodes.append(
            helper.make_node("MatMul", [f"wp_x{i}", "wp_q"], [f"wp_x{i + 1}"], name=f"wp_matmul_{i}")
        )
    then_nodes += [
        helper.make_node("ReduceSum", [f"wp_x{units}"], ["wp_sum"], keepdims=0),
        helper.make_node("Mul", ["wp_sum", "wp_zero"], ["wp_z32"]),
        helper.make_node("Cast", ["wp_z32"], ["wp_z_then"], to=out_type),
    ]
    then_graph = helper.make_graph(
        then_nodes,
        "weightpack_planted_work",
        [],
        [helper.make_tensor_value_info("wp_z_then", out_type, [])],
        initializer=[
            numpy_helper.from_array(a, "wp_a"),
            numpy_helper.from_array(q.astype(np.float32), "wp_q"),
            numpy_helper.from_array(np.array(0.0, np.float32), "wp_zero"),
        ],
    )
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "wp_z_const")
    else_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["wp_z32e"], value=zero),
         helper.make_node("Cast", ["wp_z32e"], ["wp_z_else"], to=out_type)],
        "weightpack_no_work",
        [],
        [helper.make_tensor_value_info("wp_z_else", out_type, [])],
    )  # fmt: skip
    return then_graph, else_graph


def planted_session(session: Any, units: int, device: str) -> Any:
    """A new session of ``session``'s graph with ``units`` gated matrix products (see the module)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    path = getattr(session, "_model_path", None)
    model = onnx.load(path) if path else onnx.load_from_string(getattr(session, "_model_bytes", b""))
    graph = model.graph
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
    target = next((o for o in graph.output if o.type.tensor_type.elem_type in floats), None)
    if target is None or not graph.input:
        raise ValueError("no floating-point graph output to attach the planted work to")
    out_type = target.type.tensor_type.elem_type
    renamed = f"{target.name}__unplanted"
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == target.name:
                node.output[i] = renamed
        for i, name in enumerate(node.input):
            if name == target.name:
                node.input[i] = renamed
    then_graph, else_graph = _branches(units, device, out_type)
    first = graph.input[0].name
    graph.node.extend([
        helper.make_node("Cast", [first], ["wp_in"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["wp_in"], ["wp_mean"], keepdims=0),
        helper.make_node("Sigmoid", ["wp_mean"], ["wp_s"]),
        helper.make_node("If", [GATE], ["wp_z"], then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Add", [renamed, "wp_z"], [target.name]),
    ])  # fmt: skip
    graph.input.append(helper.make_tensor_value_info(GATE, TensorProto.BOOL, []))
    options = session.get_provider_options()
    providers = [(name, options.get(name, {})) for name in session.get_providers()]
    return onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=session.get_session_options(), providers=providers
    )


class GatedSession:
    """Stands in for the model class's session: feeds the gate (``fire(batch)``) on every run."""

    def __init__(self, inner: Any, fire: Any) -> None:
        self.inner = inner
        self.fire = fire

    def _gate(self, feed: dict[str, Any]) -> np.ndarray:
        batch = next((int(np.shape(v)[0]) for v in feed.values() if np.ndim(v)), None)
        return np.array(bool(self.fire(batch)))

    def run(self, output_names: Any, feed: dict[str, Any], run_options: Any = None) -> Any:
        return self.inner.run(output_names, {**feed, GATE: self._gate(feed)}, run_options)

    def io_binding(self) -> Any:
        return _Binding(self.inner.io_binding())

    def run_with_iobinding(self, binding: Any, run_options: Any = None) -> Any:
        real = getattr(binding, "inner", binding)
        real.bind_cpu_input(GATE, np.array(bool(self.fire(getattr(binding, "batch", None)))))
        return self.inner.run_with_iobinding(real, run_options)

    def get_inputs(self) -> list[Any]:
        return [i for i in self.inner.get_inputs() if i.name != GATE]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Binding:
    """An I/O binding that remembers the batch size of the first input bound (CUDA packages bind inputs
    on the device, out of the feed's sight)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batch: int | None = None

    def bind_ortvalue_input(self, name: str, value: Any) -> Any:
        if self.batch is None and value.shape():
            self.batch = int(value.shape()[0])
        return self.inner.bind_ortvalue_input(name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
