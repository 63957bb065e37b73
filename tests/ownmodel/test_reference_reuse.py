"""Issue 20.3: reference outputs are reused only while the code that computes them is unchanged. A run
after the recipe's reference class was edited computes them again (before: 'reference outputs ... reused'
and the old outputs judged the package)."""

from __future__ import annotations

from pathlib import Path

from tests.ownmodel.helpers import pack, write_recipe

RECIPE = """
[family]
architecture = "scaled-net"
task = "embedding"

[variants.v1]
source = "{source}"

[inputs]
kind = "tensor"
tensors = [{{ name = "x", shape = [2, 3], dtype = "float32", low = -1.0, high = 1.0 }}]

[backends.onnx]

[parity]
reference_class = "scaled_ref:ScaledReference"
"""

REFERENCE = '''
import numpy as np

SCALE = {scale}


class ScaledReference:
    """What the upstream graph computes, written out: y = x * SCALE."""

    @classmethod
    def from_pretrained(cls, path, *, device="cpu", **kwargs):
        return cls()

    def infer(self, inputs):
        return {{"y": np.asarray(inputs["x"], dtype=np.float32) * SCALE}}
'''


def identity_graph(path: Path) -> Path:
    """``x`` -> Identity -> ``y``, float32 ``[N, 3]``."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_editing_the_reference_class_invalidates_its_kept_outputs(tmp_path: Path) -> None:
    body = RECIPE.format(source=identity_graph(tmp_path / "net.onnx"))
    recipes = write_recipe(tmp_path, body)
    (recipes / "scaled_ref.py").write_text(REFERENCE.format(scale="1.0"))
    first = pack(tmp_path, body, "--no-latency")
    assert first.rc == 0, first.messages
    (recipes / "scaled_ref.py").write_text(REFERENCE.format(scale="2.0"))  # the reference now disagrees
    second = pack(tmp_path, body, "--no-latency")
    assert second.rc == 1, second.messages
    [row] = [p for p in second.report["parity"] if p["output"] == "y"]
    assert not row["passed"] and row["max_abs"] > 0.1
    (recipes / "scaled_ref.py").write_text(REFERENCE.format(scale="1.0"))  # edited back: passes again
    third = pack(tmp_path, body, "--no-latency")
    assert third.rc == 0, third.messages
