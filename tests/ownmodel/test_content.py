"""Issue 23, point 1: sources are told apart by what their files contain, whatever the suffix; a file that
nothing recognises is bad input (exit 2) that lists what was tried."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.errors import RecipeError
from packager.reference import choose_reference, content
from tests.ownmodel.helpers import ONET_PT, identity_onnx, onet_recipe, pack

ONET_MODEL = '[model]\noutput_names = ["boxes_reg", "landmarks", "face_prob"]\n'


def _traced_onet(path: Path) -> Path:
    import torch

    from tests.ownmodel.user_nets import ONet

    module = ONet().eval()
    module.load_state_dict(torch.load(ONET_PT, map_location="cpu", weights_only=True))
    torch.jit.save(torch.jit.trace(module, (torch.rand(2, 3, 48, 48),)), str(path))
    return path


def test_each_kind_is_read_from_the_bytes_whatever_the_name(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    graph = identity_onnx(tmp_path / "graph.bin")
    scripted = tmp_path / "model.jit"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    pickled = tmp_path / "weights.ckpt"
    torch.save({"w": torch.zeros(2)}, pickled)
    tensors = tmp_path / "weights.data"
    save_file({"w": torch.zeros(2)}, str(tensors))
    junk = tmp_path / "model.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    text = tmp_path / "notes.onnx"
    text.write_text("not a graph")
    assert content.sniff(graph) == content.ONNX
    assert content.sniff(scripted) == content.TORCHSCRIPT
    assert content.sniff(pickled) == content.PICKLE
    assert content.sniff(tensors) == content.SAFETENSORS
    assert content.sniff(junk) is None and content.sniff(text) is None


def test_the_decision_follows_the_kinds_not_the_names() -> None:
    kinds = {"model.jit": content.TORCHSCRIPT}
    spec = choose_reference({"model.jit"}, None, None, kinds=kinds)
    assert spec.kind == "torchscript-file" and spec.kwargs["torchscript_file"] == "model.jit"
    spec = choose_reference({"net.bin"}, None, None, kinds={"net.bin": content.ONNX})
    assert spec.kind == "onnx-file"
    spec = choose_reference({"w.ckpt"}, "my.nets:Net", None, kinds={"w.ckpt": content.PICKLE})
    assert spec.kind == "module" and spec.kwargs["weights"] == "w.ckpt"
    with pytest.raises(RecipeError, match=r"variants.v1.source.*model.pt.*tried a TorchScript archive.*ONNX"):
        choose_reference(
            {"model.pt"}, None, None, kinds={"model.pt": None}, source_field="variants.v1.source"
        )


@pytest.mark.skipif(ONET_PT is None, reason="facenet-pytorch (onet.pt) is not installed")
def test_a_jit_torchscript_file_is_recognised(tmp_path: Path) -> None:
    """``source = "./weights/model.jit"`` was taken for an HF package (exit 1, blaming the HF backend)."""
    (tmp_path / "weights").mkdir()
    jit = _traced_onet(tmp_path / "weights" / "model.jit")
    run = pack(tmp_path, onet_recipe(str(jit), model=ONET_MODEL, backends="[backends.torch-script]"),
               "--no-latency")  # fmt: skip
    assert run.rc == 0, run.messages[-3000:]
    ref = run.report["references"]["onet"]
    assert ref["kind"] == "torchscript-file" and "model.jit" in ref["description"]
    assert all(p["passed"] for p in run.report["parity"])


def test_an_onnx_graph_named_bin_is_adopted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    identity_onnx(src / "graph.bin")
    inputs = '[variants.onet.inputs]\nkind = "tensor"\ntensors = [{ name = "x", shape = [1, 2] }]\n'
    run = pack(tmp_path, onet_recipe(str(src / "graph.bin"), inputs=inputs), "--no-latency")
    assert run.rc == 0, run.messages[-3000:]
    assert run.report["references"]["onet"]["kind"] == "onnx-file"
    assert [f["path"] for f in run.report["packages"][0]["files"]] == ["weights.onnx"]  # graph.bin adopted


def test_a_file_nothing_recognises_is_bad_input_listing_what_was_tried(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    junk = tmp_path / "weights" / "model.jit"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    run = pack(tmp_path, onet_recipe(str(junk)), "--no-latency")
    assert run.rc == 2, run.messages[-3000:]
    assert "variants.onet.source" in run.messages and "model.jit" in run.messages
    for tried in ("TorchScript archive", "ONNX graph", "safetensors", "torch.save state dict", "config.json"):
        assert tried in run.messages, tried
    assert "hf package" not in run.messages and "Traceback" not in run.messages


def test_a_folder_without_a_model_is_bad_input_too(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.txt").write_text("weights to follow")
    shutil.copyfile(src / "readme.txt", src / "vocab.txt")
    run = pack(tmp_path, onet_recipe(str(src)), "--no-latency")
    assert run.rc == 2, run.messages[-3000:]
    assert "readme.txt" in run.messages and "tried" in run.messages
