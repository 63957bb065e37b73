"""Issue 11, friction 4: the ONNX export declared every axis dynamic (H and W of a net that only works at
48x48); now the batch is, and other axes only where the recipe declares them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from packager.errors import RecipeError
from packager.recipes import load_recipe
from tests.ownmodel.helpers import DATA, ONET_PT, USER_MODEL, onet_recipe, pack, write_recipe

pytestmark = pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")


def _graph_input_shape(zip_path: Path) -> list:
    import onnx

    with zipfile.ZipFile(zip_path) as zf:
        model = onnx.load_from_string(zf.read("weights.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def test_only_the_batch_axis_is_dynamic_by_default(tmp_path: Path) -> None:
    run = pack(tmp_path, onet_recipe(str(ONET_PT), model=USER_MODEL), "--no-latency")
    assert run.rc == 0, run.messages[-3000:]
    assert _graph_input_shape(run.out / "my-onet-onet-onnx.zip") == ["batch", 3, 48, 48]


def test_declared_axes_are_dynamic(tmp_path: Path) -> None:
    model = '[model]\nfactory = "mtcnn_nets:build"\nkwargs = { net = "pnet" }\n'
    model += 'output_names = ["boxes_reg", "face_prob"]\n'
    inputs = (
        '[variants.onet.inputs]\nkind = "tensor"\n'
        'tensors = [{ name = "image", shape = [2, 3, 60, 80], low = -1.0, high = 1.0 }]\n'
    )
    backends = "[backends.onnx]\ndynamic_axes = { image = [2, 3] }\n"
    body = onet_recipe(str(DATA / "pnet.pt"), model=model, inputs=inputs, backends=backends)
    run = pack(tmp_path, body, "--no-latency")
    assert run.rc == 0, run.messages[-3000:]
    assert _graph_input_shape(run.out / "my-onet-onet-onnx.zip") == ["batch", 3, "image_dim2", "image_dim3"]


def test_dynamic_axes_must_be_axis_lists(tmp_path: Path) -> None:
    body = onet_recipe(
        "/tmp/x.pt", model=USER_MODEL, backends='[backends.onnx]\ndynamic_axes = { image = "hw" }\n'
    )
    with pytest.raises(RecipeError, match=r"backends.onnx.dynamic_axes.image.*not a list of axis indices"):
        load_recipe(write_recipe(tmp_path, body) / "mine.toml")
