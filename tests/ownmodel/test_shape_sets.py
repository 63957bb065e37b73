"""Issue 11, friction 4: testing another input shape needed a duplicate variant (a duplicate zip), and
nothing checked which ONNX axes really are dynamic. A shape set verifies and times one zip at each shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ownmodel.helpers import DATA, ONET_PT, onet_recipe, pack

pytestmark = pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (pnet.pt) is not installed")
PNET_MODEL = (
    '[model]\nfactory = "mtcnn_nets:build"\nkwargs = { net = "pnet" }\n'
    'output_names = ["boxes_reg", "face_prob"]\n'
)
SHAPES = (
    '[variants.onet.inputs]\nkind = "tensor"\n'
    'tensors = [{ name = "image", shapes = [[2, 3, 60, 80], [2, 3, 120, 160]], low = -1.0, high = 1.0 }]\n'
)
LABELS = {"image 2x3x60x80", "image 2x3x120x160"}  # every label carries the full shape (issue 23.5)


def test_one_zip_is_checked_and_timed_at_every_shape(tmp_path: Path) -> None:
    backends = "[backends.torch]\n[backends.onnx]\ndynamic_axes = { image = [2, 3] }\n"
    body = onet_recipe(str(DATA / "pnet.pt"), model=PNET_MODEL, inputs=SHAPES, backends=backends)
    run = pack(tmp_path, body)
    assert run.rc == 0, run.messages[-3000:]
    report = run.report
    assert sorted(p["zip"] for p in report["packages"]) == ["my-onet-onet-onnx.zip", "my-onet-onet-torch.zip"]
    assert report["references"]["onet"]["input_shapes"] == ["image 2x3x60x80", "image 2x3x120x160"]
    for backend in ("torch", "onnx"):
        parity = [p for p in report["parity"] if p["backend"] == backend]
        assert {p["input_shape"] for p in parity} == LABELS and all(p["passed"] for p in parity)
        latency = [r for r in report["latency"] if r["backend"] == backend]
        timed = {(r["input_shape"], r["batch_size"]) for r in latency}
        assert timed == {("image 1x3x60x80", 1), ("image 1x3x120x160", 1)}  # the shape timed, batch 1
    assert "image 1x3x120x160" in (run.out / "report.md").read_text()


def test_the_shape_set_proves_which_onnx_axes_are_dynamic(tmp_path: Path) -> None:
    """Exported with only the batch dynamic (the default), the graph refuses the second shape: a failed
    check (exit 1) naming the shape expected and received."""
    body = onet_recipe(str(DATA / "pnet.pt"), model=PNET_MODEL, inputs=SHAPES)
    run = pack(tmp_path, body, "--no-latency")
    assert run.rc == 1, run.messages[-3000:]
    failure = next(f for f in run.report["failures"] if f["backend"] == "onnx")
    assert failure["stage"] == "parity" and failure["exit_code"] == 1
    assert "at input shape image 2x3x120x160" in failure["message"]
    assert (
        "expected shape [batch, 3, 60, 80] float32, received [2, 3, 120, 160] float32" in failure["message"]
    )
