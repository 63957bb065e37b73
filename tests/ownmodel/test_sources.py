"""Issue 11, frictions 1 and 2: a user's own module, ONNX file or TorchScript file is packaged and referenced
through itself, with no reference class to write; a wrong reference class is a clear exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packager.errors import RecipeError
from packager.reference import choose_reference, is_torchscript
from tests.ownmodel.helpers import ONET_PT, USER_MODEL, onet_recipe, pack

pytestmark = pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")


def _onet_module():
    import torch

    from tests.ownmodel.user_nets import ONet

    module = ONet().eval()
    module.load_state_dict(torch.load(ONET_PT, map_location="cpu", weights_only=True))
    return module


@pytest.mark.slow
def test_state_dict_with_a_factory_is_referenced_through_that_module(tmp_path: Path) -> None:
    backends = "[backends.torch]\n[backends.onnx]\n"
    body = onet_recipe(str(ONET_PT), model=USER_MODEL, backends=backends)
    run = pack(tmp_path, body, "--no-latency", process=True)
    assert run.rc == 0, run.stderr[-3000:]
    report = run.report
    ref = report["references"]["onet"]
    assert ref["model_class"] == "packager.reference.module:ModuleReference"
    assert ref["kind"] == "module"
    assert ref["description"] == "your module tests.ownmodel.user_nets:ONet, fp32 on the CPU"
    assert {p["backend"] for p in report["packages"]} == {"torch", "onnx"}
    assert all(p["passed"] for p in report["parity"])
    assert max(p["max_abs"] for p in report["parity"] if p["backend"] == "torch") == 0.0


def test_a_factory_function_works_like_a_class(tmp_path: Path) -> None:
    model = USER_MODEL.replace("user_nets:ONet", "user_nets:build_onet")
    run = pack(tmp_path, onet_recipe(str(ONET_PT), model=model, backends="[backends.torch]"), "--no-latency")
    assert run.rc == 0, run.stderr[-3000:]


def test_onnx_upstream_of_any_name_is_its_own_reference(tmp_path: Path) -> None:
    import torch

    src = tmp_path / "src"
    src.mkdir()
    with torch.no_grad():
        torch.onnx.export(
            _onet_module(),
            (torch.rand(2, 3, 48, 48),),
            str(src / "face-landmarks.onnx"),
            input_names=["image"],
            output_names=["boxes_reg", "landmarks", "face_prob"],
            dynamic_axes={"image": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    run = pack(tmp_path, onet_recipe(str(src / "face-landmarks.onnx")), "--no-latency")
    assert run.rc == 0, run.stderr[-3000:]
    ref = run.report["references"]["onet"]
    assert ref["model_class"] == "packager.reference.onnx_file:OnnxFileReference"
    assert ref["kind"] == "onnx-file"
    assert "face-landmarks.onnx" in ref["description"] and "graph optimisations off" in ref["description"]
    parity = run.report["parity"]
    assert parity and all(p["passed"] for p in parity)


def test_torchscript_upstream_is_referenced_by_torchscript(tmp_path: Path) -> None:
    import torch

    src = tmp_path / "src"
    src.mkdir()
    traced = torch.jit.trace(_onet_module(), (torch.rand(2, 3, 48, 48),))
    torch.jit.save(traced, str(src / "onet_traced.pt"))
    assert is_torchscript(src / "onet_traced.pt") and not is_torchscript(ONET_PT)
    model = '[model]\noutput_names = ["boxes_reg", "landmarks", "face_prob"]\n'
    backends = "[backends.torch-script]\n[backends.onnx]\n"
    run = pack(
        tmp_path, onet_recipe(str(src / "onet_traced.pt"), model=model, backends=backends), "--no-latency"
    )
    assert run.rc == 0, run.stderr[-3000:]
    ref = run.report["references"]["onet"]
    assert ref["model_class"] == "packager.reference.torchscript_file:TorchScriptReference"
    assert all(p["passed"] for p in run.report["parity"])


def test_state_dict_without_a_module_says_what_to_add(tmp_path: Path) -> None:
    run = pack(tmp_path, onet_recipe(str(ONET_PT)), "--no-latency")
    assert run.rc == 2, run.stderr[-3000:]
    assert "[model] factory" in run.messages and "onet.pt" in run.messages
    assert "Traceback" not in run.messages
    assert run.json["passed"] is False and run.json["failures"][0]["exit_code"] == 2


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        ("tests.ownmodel.user_netz:ONet", "No module named 'tests.ownmodel.user_netz'"),
        ("tests.ownmodel.user_nets:ONett", "has no attribute 'ONett'"),
    ],
)
def test_misspelt_factory_is_bad_input(tmp_path: Path, factory: str, expected: str) -> None:
    model = USER_MODEL.replace("tests.ownmodel.user_nets:ONet", factory)
    run = pack(tmp_path, onet_recipe(str(ONET_PT), model=model), "--no-latency")
    assert run.rc == 2, run.stderr[-3000:]
    assert "model.factory" in run.messages and expected in run.messages
    assert "Traceback" not in run.messages


@pytest.mark.parametrize("ref", ["tests.ownmodel.user_nets:ONet", "tests.ownmodel.user_nets:build_onet"])
def test_plain_module_named_as_reference_class_is_a_clear_error(tmp_path: Path, ref: str) -> None:
    parity = f'[parity]\nreference_class = "{ref}"\n'
    run = pack(tmp_path, onet_recipe(str(ONET_PT), model=USER_MODEL, parity=parity), "--no-latency")
    assert run.rc == 2, run.stderr[-3000:]
    assert "parity.reference_class" in run.messages
    assert "from_pretrained" in run.messages and "[model] factory" in run.messages
    assert "Traceback" not in run.messages


def test_reference_class_without_torch_module_is_refused_up_front_for_torch_exports() -> None:
    from packager.reference import check_reference_class

    with pytest.raises(RecipeError, match=r"parity.reference_class.*torch_module\(\).*onnx"):
        check_reference_class("backends.onnx.model:OnnxModel", "recipe.toml", needs_torch=["onnx"])


def test_choose_reference_is_a_pure_decision_on_the_files() -> None:
    files = {"net.onnx"}
    assert choose_reference(files, None, None).model_class.endswith("OnnxFileReference")
    assert choose_reference({"config.json", "model.safetensors"}, None, None, task="embedding").kind == "hf"
    with pytest.raises(RecipeError, match=r"model.factory"):
        choose_reference({"weights.safetensors"}, None, None)
    chosen = choose_reference({"weights.pth"}, "my.nets:Net", None)
    assert chosen.model_class.endswith("ModuleReference") and chosen.kwargs["factory"] == "my.nets:Net"
    assert choose_reference({"a.onnx"}, None, "x.y:Ref").model_class == "x.y:Ref"


def test_a_reference_class_that_raises_is_bad_input_naming_the_inputs(tmp_path: Path) -> None:
    """Friction 5: a wrong input name inside the user's class gave ``KeyError: 'x'`` and a traceback."""
    recipes_dir = tmp_path / "recipes"
    recipes_dir.mkdir()
    (recipes_dir / "my_ref.py").write_text(  # the recipe's folder is importable: the user's file sits there
        "class Ref:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path, **kwargs):\n"
        "        return cls()\n"
        "    def infer(self, inputs):\n"
        "        return {'y': inputs['x']}\n"
        "    def torch_module(self):\n"
        "        raise NotImplementedError\n"
    )
    parity = '[parity]\nreference_class = "my_ref:Ref"\n'
    run = pack(tmp_path, onet_recipe(str(ONET_PT), parity=parity), "--no-latency")
    assert run.rc == 2, run.messages[-3000:]
    assert "Traceback" not in run.stderr
    assert "KeyError: 'x'" in run.messages and "'image' received [4, 3, 48, 48] float32" in run.messages
    assert "your reference class my_ref:Ref" in run.messages


def test_factory_kwargs_it_does_not_take_are_bad_input(tmp_path: Path) -> None:
    model = USER_MODEL + "kwargs = { depth = 3 }\n"
    run = pack(tmp_path, onet_recipe(str(ONET_PT), model=model), "--no-latency")
    assert run.rc == 2, run.messages[-3000:]
    assert "Traceback" not in run.stderr
    assert "[model] factory tests.ownmodel.user_nets:ONet({'depth': 3}) raised TypeError" in run.messages


@pytest.mark.slow
def test_an_unexpected_error_is_one_line_unless_debug(tmp_path: Path) -> None:
    """No traceback unless --debug, even for an error no check anticipated (here: a package class that
    divides by zero while loading)."""
    recipes_dir = tmp_path / "recipes"
    recipes_dir.mkdir()
    (recipes_dir / "broken_cls.py").write_text(
        "class Broken:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path, **kwargs):\n"
        "        return 1 / 0\n"
        "    def infer(self, inputs):\n"
        "        return {}\n"
    )
    backends = '[backends.onnx]\nmodel_class = "broken_cls:Broken"\n'
    body = onet_recipe(str(ONET_PT), model=USER_MODEL, backends=backends)
    run = pack(tmp_path, body, "--no-latency", process=True)
    assert run.rc == 1, run.messages[-3000:]
    assert "Traceback" not in run.stderr
    assert "unexpected ZeroDivisionError: division by zero (re-run with --debug" in run.stderr
    assert run.json["error_type"] == "ZeroDivisionError"
    debug = pack(tmp_path, body, "--no-latency", "--debug", process=True)
    assert debug.rc == 1 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_the_onnx_file_reference_runs_the_graph_as_written(tmp_path: Path) -> None:
    """The reference for an upstream .onnx has onnxruntime's graph optimisations off (the package, optimised,
    is compared against the graph as written), whatever the file's name."""
    import onnxruntime

    from packager.reference.onnx_file import OnnxFileReference
    from tests.ownmodel.helpers import identity_onnx

    identity_onnx(tmp_path / "detector-v2.onnx")
    reference = OnnxFileReference.from_pretrained(tmp_path)
    level = reference.session.get_session_options().graph_optimization_level
    assert level == onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = np.ones((1, 2), np.float32)
    assert np.array_equal(reference.infer({"x": x})["y"], x)
