"""Issue 11, frictions 3, 5 and 6: optional [inputs], user errors as exit 2 with a message that names the
variant, backend, input and what was expected and received (report still written, --json still printed),
and dtype casts that change values refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.casting import InputDtypeError, cast_inputs
from packager.errors import RecipeError
from packager.recipes import load_recipe
from tests.ownmodel.helpers import ONET_INPUTS, ONET_PT, USER_MODEL, onet_recipe, pack, write_recipe

needs_onet = pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")


def test_family_inputs_are_optional_when_every_variant_has_its_own(tmp_path: Path) -> None:
    recipes = write_recipe(tmp_path, onet_recipe("/tmp/onet.pt", model=USER_MODEL))
    recipe = load_recipe(recipes / "mine.toml")
    assert recipe.inputs is None
    assert recipe.inputs_for("onet").tensors[0].shape == [4, 3, 48, 48]


def test_a_variant_without_inputs_needs_family_inputs(tmp_path: Path) -> None:
    body = onet_recipe("/tmp/onet.pt", model=USER_MODEL) + '[variants.other]\nsource = "/tmp/x.pt"\n'
    recipes = write_recipe(tmp_path, body)
    with pytest.raises(RecipeError, match=r"field 'inputs': is required.*variants without their own: other"):
        load_recipe(recipes / "mine.toml")


def _tensor_inputs(name: str = "image", shape: str = "[4, 3, 48, 48]", dtype: str = "float32") -> str:
    return (
        ONET_INPUTS.replace('name = "image"', f'name = "{name}"')
        .replace("[4, 3, 48, 48]", shape)
        .replace('dtype = "float32"', f'dtype = "{dtype}"')
    )


def _bad_input_run(tmp_path: Path, inputs: str, backends: str = "[backends.onnx]", process: bool = False):
    run = pack(
        tmp_path,
        onet_recipe(str(ONET_PT), model=USER_MODEL, inputs=inputs, backends=backends),
        "--no-latency",
        process=process,
    )
    assert "Traceback" not in run.messages, run.stderr[-3000:]
    assert run.json["passed"] is False, run.stdout
    assert (run.out / "report.json").is_file(), "the report must still be written"
    return run


@pytest.mark.slow
@needs_onet
def test_wrong_input_shape_names_variant_input_expected_and_received(tmp_path: Path) -> None:
    run = _bad_input_run(tmp_path, _tensor_inputs(shape="[4, 3, 24, 24]"), process=True)
    assert run.rc == 2
    for part in ("onet", "reference", "'image'", "received [4, 3, 24, 24] float32"):
        assert part in run.messages, (part, run.stderr[-2000:])
    failure = run.report["failures"][0]
    assert failure["stage"] == "inputs" and failure["variant"] == "onet" and failure["exit_code"] == 2


@needs_onet
def test_wrong_channel_count_is_bad_input(tmp_path: Path) -> None:
    run = _bad_input_run(tmp_path, _tensor_inputs(shape="[4, 1, 48, 48]"))
    assert run.rc == 2 and "received [4, 1, 48, 48]" in run.messages


@needs_onet
def test_wrong_input_name_lists_the_accepted_names(tmp_path: Path) -> None:
    model = USER_MODEL + 'input_names = ["image"]\n'
    run = pack(
        tmp_path,
        onet_recipe(str(ONET_PT), model=model, inputs=_tensor_inputs(name="x")),
        "--no-latency",
    )
    assert run.rc == 2, run.stderr[-3000:]
    assert "Traceback" not in run.messages
    assert "'image'" in run.messages and "'x'" in run.messages and "onet" in run.messages


@needs_onet
def test_integer_inputs_for_a_float_model_are_refused(tmp_path: Path) -> None:
    run = _bad_input_run(tmp_path, _tensor_inputs(dtype="int64"))
    assert run.rc == 2
    assert "int64" in run.messages and "float32" in run.messages and "'image'" in run.messages


@needs_onet
def test_float64_inputs_export_to_onnx_and_the_cast_is_reported(tmp_path: Path) -> None:
    run = pack(
        tmp_path,
        onet_recipe(str(ONET_PT), model=USER_MODEL, inputs=_tensor_inputs(dtype="float64")),
        "--no-latency",
    )
    assert run.rc == 0, run.stderr[-3000:]
    casts = run.report["references"]["onet"]["input_casts"]
    assert casts == [{"input": "image", "from": "float64", "to": "float32", "exact": False}]


def test_cast_rules() -> None:
    f64 = {"image": np.linspace(-1, 1, 8).reshape(2, 4)}
    cast, notes = cast_inputs(f64, {"image": np.float32}, where="v/onnx")
    assert cast["image"].dtype == np.float32 and notes[0]["exact"] is False
    _, notes = cast_inputs({"ids": np.arange(4, dtype=np.int32)}, {"ids": np.int64}, where="v/onnx")
    assert notes == [{"input": "ids", "from": "int32", "to": "int64", "exact": True}]
    with pytest.raises(InputDtypeError, match=r"v/onnx: input 'image' is float64.*takes int64.*changes"):
        cast_inputs(f64, {"image": np.int64}, where="v/onnx")
    with pytest.raises(InputDtypeError, match=r"input 'ids' is int64.*takes float32"):
        cast_inputs({"ids": np.arange(3)}, {"ids": np.float32}, where="v/onnx")


@needs_onet
def test_onnx_package_class_refuses_value_changing_casts_and_names_the_shape(tmp_path: Path) -> None:
    """The package's own model class (not only the reference) checks a feed against the graph."""
    import torch

    from backends.onnx.model import OnnxModel
    from tests.ownmodel.user_nets import ONet

    module = ONet().eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.rand(1, 3, 48, 48),),
            str(tmp_path / "weights.onnx"),
            input_names=["image"],
            dynamic_axes={"image": {0: "batch"}},
            dynamo=False,
        )
    model = OnnxModel.from_pretrained(tmp_path)
    ints = np.zeros((2, 3, 48, 48), dtype=np.int64)
    with pytest.raises(InputDtypeError, match=r"input 'image' is int64 but the model takes float32"):
        model.infer({"image": ints})
    with pytest.raises(
        InputDtypeError, match=r"expected shape \[batch, 3, 48, 48\] float32, received \[2, 3, 24, 24\]"
    ):
        model.infer({"image": np.ones((2, 3, 24, 24), dtype=np.float32)})
    with pytest.raises(InputDtypeError, match=r"takes inputs 'image'; received 'x'"):
        model.infer({"x": np.ones((2, 3, 48, 48), dtype=np.float32)})
    model.infer({"image": np.ones((2, 3, 48, 48), dtype=np.float64)})
    assert model.casts == [{"input": "image", "from": "float64", "to": "float32", "exact": True}]


def test_a_shape_set_is_one_variant(tmp_path: Path) -> None:
    inputs = ONET_INPUTS.replace("shape = [4, 3, 48, 48]", "shapes = [[1, 3, 120, 160], [1, 3, 240, 320]]")
    recipe = load_recipe(
        write_recipe(tmp_path, onet_recipe("/tmp/p.pt", model=USER_MODEL, inputs=inputs)) / "mine.toml"
    )
    spec = recipe.inputs_for("onet")
    assert spec.shape_count == 2 and spec.tensors[0].shape == [1, 3, 120, 160]
    assert spec.at_shape(1).tensors[0].shape == [1, 3, 240, 320]
    assert [spec.shape_label(i) for i in range(2)] == ["image 1x3x120x160", "image 1x3x240x320"]
    bad = ONET_INPUTS.replace("shape = [4, 3, 48, 48]", "shapes = [[1, 3, 120, 160], [1, 3, 240]]")
    with pytest.raises(RecipeError, match=r"inputs.tensors\[0\].shapes.*mixes ranks"):
        load_recipe(
            write_recipe(tmp_path, onet_recipe("/tmp/p.pt", model=USER_MODEL, inputs=bad)) / "mine.toml"
        )


@pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")
def test_a_batch_size_the_package_refuses_is_its_failed_check_with_a_report(tmp_path: Path) -> None:
    """An ONNX package with a static batch of 4 passes parity (the inputs are batch 4) and refuses the timed
    batch 1: that package's failed check (exit 1, stage latency), with its parity rows and a report, not an
    aborted run."""
    body = onet_recipe(str(ONET_PT), model=USER_MODEL, backends="[backends.onnx]\nstatic_batch_size = 4\n")
    run = pack(tmp_path, body)
    assert run.rc == 1, run.stderr[-3000:]
    report = run.report
    failure = next(f for f in report["failures"] if f["stage"] == "latency")
    assert failure["backend"] == "onnx" and failure["exit_code"] == 1
    assert "image" in failure["message"] and "1" in failure["message"]
    assert report["parity"] and all(p["passed"] for p in report["parity"])
