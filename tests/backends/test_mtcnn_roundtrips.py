"""MTCNN nets with facenet-pytorch's shipped weights: torch -> torch-script -> onnx round trips.

Tolerances (max |package - upstream|; upstream = facenet-pytorch's own modules, fp32 CPU):
* torch / torch-script: identical kernels and weights, bitwise equal; 1e-6 guards against a reordered sum.
* onnx (ORT CPU): different conv / GEMM kernels; outputs are box offsets of order 1 and softmax
  probabilities, and fp32 re-association over at most 1152 terms gives ~1e-7..1e-6 (measured 1.2e-6 worst
  on P-net), hence 1e-5.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from mtcnn_nets import MTCNNNet, build

from tests.backends.helpers import export_package, load, max_abs, mtcnn_dir

DATA = mtcnn_dir()
pytestmark = [
    pytest.mark.slow,  # real weights exported by every backend
    pytest.mark.skipif(
        DATA is None, reason="facenet-pytorch is not installed (scripts/setup.sh installs it --no-deps)"
    ),
]
SHAPES = {"pnet": (2, 3, 120, 160), "rnet": (16, 3, 24, 24), "onet": (8, 3, 48, 48)}
TOL = {"torch": 1e-6, "torch-script": 1e-6, "onnx": 1e-5}
REFERENCE = "mtcnn_nets:MTCNNNet"


def image(net: str, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    shape = SHAPES[net] if batch is None else (batch, *SHAPES[net][1:])
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(-1, 1, size=shape).astype(np.float32)}


def upstream_module(net: str, monkeypatch):
    """facenet-pytorch's own PNet/RNet/ONet. Its package imports torchvision (not installable beside torch
    2.13) only for detection utilities the nets do not use, so that import is stubbed for this test."""
    fake = types.ModuleType("torchvision")
    fake.transforms = types.ModuleType("torchvision.transforms")
    fake.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    fake.ops = types.ModuleType("torchvision.ops")
    fake.ops.boxes = types.ModuleType("torchvision.ops.boxes")
    fake.ops.boxes.batched_nms = None
    for name, mod in {
        "torchvision": fake,
        "torchvision.transforms": fake.transforms,
        "torchvision.transforms.functional": fake.transforms.functional,
        "torchvision.ops": fake.ops,
        "torchvision.ops.boxes": fake.ops.boxes,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    pytest.importorskip("PIL")
    for name in [m for m in sys.modules if m.startswith("facenet_pytorch")]:
        monkeypatch.delitem(sys.modules, name)
    from facenet_pytorch.models import mtcnn

    return {"pnet": mtcnn.PNet, "rnet": mtcnn.RNet, "onet": mtcnn.ONet}[net](pretrained=True).eval()


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_reimplementation_matches_facenet_pytorch(net, monkeypatch):
    import torch

    upstream = upstream_module(net, monkeypatch)
    ours = MTCNNNet.from_pretrained(DATA, variant=net)
    x = image(net)
    with torch.no_grad():
        expected = [t.numpy() for t in upstream(torch.from_numpy(x["image"]))]
    got = ours.infer(x)
    for a, b in zip(expected, got.values(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("net", ["pnet", "onet"])
def test_torch_torchscript_onnx_roundtrips(tmp_path, net):
    sample = image(net)
    reference = MTCNNNet.from_pretrained(DATA, variant=net).infer(sample)
    for backend in ("torch", "torch-script", "onnx"):
        options = {"factory": "mtcnn_nets:build", "factory_kwargs": {"net": "{variant}"}}
        unzipped, result = export_package(
            tmp_path / backend,
            backend,
            DATA,
            sample,
            options=options if backend == "torch" else {},
            reference_class=REFERENCE,
            variant=net,
            task="object-detection",
        )
        diffs = max_abs(reference, load(unzipped, result).infer(sample))
        print(f"mtcnn {net} {backend}: {diffs}")
        assert all(d <= TOL[backend] for d in diffs.values()), (backend, diffs)


def test_onnx_dynamic_batch_same_per_sample(tmp_path):
    unzipped, result = export_package(
        tmp_path, "onnx", DATA, image("rnet"), reference_class=REFERENCE, variant="rnet"
    )
    model = load(unzipped, result)
    four = image("rnet", batch=4, seed=3)
    out4 = model.infer(four)
    for row in range(4):
        out1 = model.infer({"image": four["image"][row : row + 1]})
        for name in out1:
            np.testing.assert_allclose(out4[name][row], out1[name][0], atol=1e-6, rtol=0)


def test_onnx_adopts_upstream_onnx_and_external_data(tmp_path):
    """An upstream that already is ONNX (a real graph: O-net with facenet-pytorch's weights, saved with
    external data) is adopted: weights.onnx + weights.onnx.data, same outputs."""
    import onnx
    import torch

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    module = build("onet")
    module.load_state_dict(torch.load(DATA / "onet.pt", weights_only=True))
    sample = image("onet")
    torch.onnx.export(
        module, (torch.from_numpy(sample["image"]),), str(tmp_path / "onet.onnx"),
        input_names=["image"], output_names=["boxes_reg", "landmarks", "face_prob"],
        dynamic_axes={"image": {0: "batch"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    onnx.save_model(
        onnx.load(str(tmp_path / "onet.onnx")), str(upstream / "model.onnx"),
        save_as_external_data=True, location="model.onnx.weights", size_threshold=0,
    )  # fmt: skip
    (upstream / "class_names.txt").write_text("face\n")
    unzipped, result = export_package(tmp_path, "onnx", upstream, sample, reference_class=REFERENCE)
    assert (unzipped / "weights.onnx.data").is_file() and (unzipped / "class_names.txt").is_file()
    assert not (unzipped / "model.onnx.weights").exists()
    assert any("adopted" in n for n in result.notes)
    reference = MTCNNNet.from_pretrained(DATA, variant="onet").infer(sample)
    diffs = max_abs(reference, load(unzipped, result).infer(sample))
    assert all(d <= TOL["onnx"] for d in diffs.values()), diffs


def test_onnx_external_data_on_export(tmp_path):
    """``external_data = true`` (automatic above 1.8 GB) keeps weights in a single weights.onnx.data."""
    sample = image("onet")
    unzipped, result = export_package(
        tmp_path, "onnx", DATA, sample, options={"external_data": True}, reference_class=REFERENCE,
        variant="onet",
    )  # fmt: skip
    files = sorted(p.name for p in unzipped.iterdir())
    assert files == ["weights.onnx", "weights.onnx.data"], files
    reference = MTCNNNet.from_pretrained(DATA, variant="onet").infer(sample)
    diffs = max_abs(reference, load(unzipped, result).infer(sample))
    assert all(d <= TOL["onnx"] for d in diffs.values()), diffs
