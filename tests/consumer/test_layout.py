"""The consumer's layout (renames and added files per backend) and consumer classes named in recipes."""

# ruff: noqa: E501  (tables of recipe snippets and the messages they must produce read best on one line)

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from backends.base import ExportRequest
from backends.errors import ConsumerUnavailableError
from packager.consumer import load_model_class
from packager.consumer.layout import LayoutError, apply_layout
from packager.consumer.model import ConsumerModel, decode_texts, encode_texts
from packager.errors import RecipeError
from packager.recipes import load_recipe

RECIPE = """
[family]
architecture = "pp-ocrv6-rec"
task = "text-only-ocr"
[variants.a]
source = "./weights"
[backends.onnx]
model_class = "inference_models.models.pp_ocrv6.pp_ocrv6_recognition_onnx:PPOCRv6RecognitionOnnx"
{layout}
[inputs]
kind = "tensor"
tensors = [{{ name = "image", shape = [1, 48, 320, 3], dtype = "uint8", low = 0, high = 255 }}]
"""


def recipe(tmp_path: Path, layout: str):
    path = tmp_path / "ocr.toml"
    path.write_text(RECIPE.format(layout=layout))
    return load_recipe(path)


def test_layout_is_read_from_the_backend_table(tmp_path):
    r = recipe(tmp_path, 'rename = { "weights.onnx" = "inference.onnx" }\n'
                         '[backends.onnx.files]\n"inference.yml" = { hook = "m.n:f" }\n'
                         '"class_names.txt" = { source = "labels.txt" }')  # fmt: skip
    options = r.backends["onnx"].options
    assert options.rename == {"weights.onnx": "inference.onnx"}
    assert options.files == {"inference.yml": {"hook": "m.n:f"}, "class_names.txt": {"source": "labels.txt"}}


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ('rename = { "weights.onnx" = "model_config.json" }', r"rename\.weights\.onnx': 'model_config.json' is reserved"),
        ('[backends.onnx.files]\n"model_dependencies/x.json" = { source = "x" }', "is reserved by the consumer"),
        ('[backends.onnx.files]\n"a.yml" = { hook = "not a ref" }', r"files\.a\.yml\.hook': 'not a ref' is not accepted"),
        ('[backends.onnx.files]\n"a.yml" = { url = "x" }', "must be a table with one key"),
        ('rename = { "weights.onnx" = "../x.onnx" }', "is not a package file name"),
    ],
)  # fmt: skip
def test_bad_layouts_are_refused_at_recipe_load(tmp_path, layout, message):
    with pytest.raises(RecipeError, match=message):
        recipe(tmp_path, layout)


def request(tmp_path: Path) -> ExportRequest:
    upstream, staging = tmp_path / "up", tmp_path / "staging"
    upstream.mkdir()
    staging.mkdir()
    (upstream / "labels.txt").write_text("cat\ndog\n")
    (staging / "weights.onnx").write_bytes(b"onnx")
    return ExportRequest(upstream, staging, "arch", "v", "classification", {}, {}, "m:R")


def hook(req: ExportRequest) -> str:
    return f"variant: {req.variant}\n"


def test_apply_layout_renames_and_adds(tmp_path):
    req = request(tmp_path)
    notes = apply_layout(
        req,
        {"weights.onnx": "inference.onnx"},
        {"inference.yml": {"hook": f"{__name__}:hook"}, "class_names.txt": {"source": "labels.txt"}},
    )
    assert sorted(p.name for p in req.staging_dir.iterdir()) == [
        "class_names.txt",
        "inference.onnx",
        "inference.yml",
    ]
    assert (req.staging_dir / "inference.yml").read_text() == "variant: v\n"
    assert (req.staging_dir / "class_names.txt").read_text() == "cat\ndog\n"
    assert len(notes) == 3


def test_apply_layout_never_overwrites_and_names_what_is_missing(tmp_path):
    req = request(tmp_path)
    with pytest.raises(
        LayoutError,
        match=r"rename model\.onnx -> a\.onnx: the export has no model\.onnx \(it has: weights\.onnx\)",
    ):
        apply_layout(req, {"model.onnx": "a.onnx"}, {})
    with pytest.raises(
        LayoutError, match=r"add weights\.onnx: the package already has weights\.onnx; refusing"
    ):
        apply_layout(req, {}, {"weights.onnx": {"source": "labels.txt"}})
    with pytest.raises(LayoutError, match=r"add x\.txt: the source has no nope\.txt"):
        apply_layout(req, {}, {"x.txt": {"source": "nope.txt"}})
    with pytest.raises(LayoutError, match=r"hook builtins:len failed: TypeError"):
        apply_layout(req, {}, {"y.txt": {"hook": "builtins:len"}})


def test_consumer_class_without_the_consumer_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "inference_models" else real(name, *a)
    )
    with pytest.raises(
        ConsumerUnavailableError, match=r"consumer's own; .*scripts/setup_consumer.sh"
    ) as info:
        load_model_class("inference_models.models.pp_ocrv6.pp_ocrv6_recognition_onnx:PPOCRv6RecognitionOnnx")
    assert info.value.exit_code == 3


class FakeOcr:
    """Stands for a consumer class's object in the adapter's output handling (pure numpy here)."""

    def forward(self, x):
        return np.full((len(x), 2), 0.5, dtype=np.float32)

    def infer(self, images):
        self.forward(images)
        return ["ab", "c"][: len(images)]


def test_adapter_catches_forward_and_encodes_text():
    model = ConsumerModel(FakeOcr(), "cpu")
    out = model.infer({"image": np.zeros((2, 4, 4, 3), np.uint8)})
    assert set(out) == {"raw", "result"} and out["raw"].shape == (2, 2)
    assert decode_texts(out["result"]) == ["ab", "c"] and ConsumerModel.texts(out) == ["ab", "c"]
    assert "forward" not in vars(model.model)  # the spy is removed again
    np.testing.assert_array_equal(encode_texts(["ab", ""]), [[97, 98], [0, 0]])


def test_text_image_inputs_render_the_texts(tmp_path):
    from packager.inputs import latency_sets, parity_inputs

    r = recipe(tmp_path, "").inputs
    assert r.kind == "tensor"
    path = tmp_path / "ti.toml"
    path.write_text(
        RECIPE.format(layout="").replace(
            'kind = "tensor"', 'kind = "text-image"\ntexts = ["ab", "a much longer line of text", "cd"]'
        )
    )
    spec = load_recipe(path).inputs
    batch = parity_inputs(spec, tmp_path)["image"]
    assert batch.shape == (3, 48, 320, 3) and batch.dtype == np.uint8
    assert batch.min() == 0 and batch.max() == 255 and not np.array_equal(batch[0], batch[1])
    assert (batch[1] < 128).any(axis=(0, 2))[-40:].sum() < 40  # the long line was shrunk to fit
    sets = latency_sets(spec, parity_inputs(spec, tmp_path), 1)
    assert not np.array_equal(sets[0]["image"], sets[1]["image"])


def test_text_image_needs_one_uint8_image_tensor(tmp_path):
    path = tmp_path / "ti.toml"
    path.write_text(
        RECIPE.format(layout="")
        .replace('kind = "tensor"', 'kind = "text-image"\ntexts = ["ab"]')
        .replace('"uint8"', '"float32"')
    )
    with pytest.raises(RecipeError, match="text-image inputs render the texts into one uint8 image tensor"):
        load_recipe(path)
