"""Transformer graphs that onnxruntime can fuse: eager attention during export, and the optional offline
pass of ``onnxruntime.transformers.optimizer`` (Attention, EmbedLayerNormalization, SkipLayerNormalization,
BiasGelu), whose fused attention is what the CUDA and TensorRT execution providers run fast.

Why the export switches attention to ``eager``: transformers loads BERT-like models with
``attn_implementation="sdpa"``. The legacy exporter lowers ``scaled_dot_product_attention`` into
MatMul/Softmax guarded by ``IsNaN``/``Where`` (rows that are fully masked), and transformers' mask helpers
build a boolean 4-D mask from ``Range``/``GreaterOrEqual``/``And``; onnxruntime's attention and
embedding fusions match the eager pattern (``MatMul -> Add(mask) -> Softmax -> MatMul`` with the additive
``(1 - mask) * min`` mask) and find neither, so the MiniLM export fused 0 Attention and 0
EmbedLayerNormalization nodes. Symbolic shape inference is not the obstacle: it completes on both graphs
with ``auto_merge``, as the optimizer runs it. Eager and sdpa compute the same function (parity
differences ~1e-7), so the switch costs nothing on the CPU.

:func:`optimizer_settings` and :func:`fusion_problem` are the decisions, pure functions over
``config.json`` and the options; :func:`optimize_file` runs the optimizer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.errors import ExportError

# transformers config.model_type -> onnxruntime.transformers.optimizer model_type (its fusion family)
OPTIMIZER_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "mpnet": "bert",
    "bart": "bart",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "t5": "t5",
    "vit": "vit",
    "clip": "clip",
    "swin": "swin",
}
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "LayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)
"""The operators the optimizer fuses for encoder models, counted in the export notes and the tests."""
CONTRIB_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class OptimizerSettings:
    model_type: str
    num_heads: int
    hidden_size: int

    def describe(self) -> str:
        return f"{self.model_type}, {self.num_heads} heads, hidden {self.hidden_size}"


def optimizer_settings(
    config: Mapping[str, Any] | None,
    *,
    model_type: str | None = None,
    num_heads: int | None = None,
    hidden_size: int | None = None,
) -> OptimizerSettings:
    """The optimizer's model type, heads and hidden size: the options where set, else ``config.json``'s
    ``model_type``/``num_attention_heads``/``hidden_size`` (``n_head``/``n_embd`` for GPT-2). ExportError
    names the option to set when neither says."""
    config = config or {}
    hf_type = str(config.get("model_type") or "")
    chosen = model_type or OPTIMIZER_MODEL_TYPES.get(hf_type)
    if not chosen:
        raise ExportError(
            f"backends.onnx.optimize = 'transformer' needs the optimizer's model type: config.json's "
            f"model_type {hf_type or '(none)'!r} is not one it fuses; set optimizer_model_type (accepted: "
            f"{', '.join(sorted(set(OPTIMIZER_MODEL_TYPES.values())))}) or optimize = 'none'"
        )
    heads = num_heads or config.get("num_attention_heads") or config.get("n_head")
    hidden = hidden_size or config.get("hidden_size") or config.get("n_embd")
    if not heads or not hidden:
        raise ExportError(
            "backends.onnx.optimize = 'transformer' needs the number of attention heads and the hidden "
            "size: config.json has no num_attention_heads/hidden_size; set optimizer_num_heads and "
            "optimizer_hidden_size"
        )
    if int(hidden) % int(heads):
        raise ExportError(
            f"backends.onnx: hidden size {hidden} is not a multiple of {heads} attention heads; check "
            "optimizer_num_heads / optimizer_hidden_size"
        )
    return OptimizerSettings(str(chosen), int(heads), int(hidden))


def read_config(upstream_dir: Path) -> dict[str, Any] | None:
    """The upstream's ``config.json`` (a transformers snapshot), or None."""
    path = Path(upstream_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fusion_problem(counts: Mapping[str, int], settings: OptimizerSettings, layers: int | None) -> str | None:
    """Why an optimised encoder graph is not worth shipping (``None``: it is): a model with ``layers``
    attention layers (``num_hidden_layers``) whose graph fused fewer Attention nodes, i.e. the export did
    not have the pattern the optimizer matches and the package would carry contrib operators for
    nothing."""
    if settings.model_type != "bert" or not layers:
        return None
    fused = counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0)
    if fused < layers:
        return (
            f"onnxruntime's transformer optimizer ({settings.describe()}) fused {fused} attention nodes "
            f"of {layers} layers; export with attention = 'eager' (the default) or set optimize = 'none'"
        )
    return None


def op_counts(model: Any, ops: tuple[str, ...] = FUSED_OPS) -> dict[str, int]:
    """How many nodes of each of ``ops`` an ONNX ``ModelProto`` holds (main graph)."""
    counts = dict.fromkeys(ops, 0)
    for node in model.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
    return counts


def _pretrained_models(module: Any) -> list[Any]:
    """The outermost transformers models inside ``module`` (itself included): the modules whose config
    has an attention implementation, their own submodels left out."""
    found: list[tuple[str, Any]] = []
    named = module.named_modules() if hasattr(module, "named_modules") else []
    for name, sub in named:
        if not hasattr(getattr(sub, "config", None), "_attn_implementation"):
            continue
        if any(name == outer or name.startswith(outer + ".") for outer, _ in found if outer):
            continue
        if found and found[0][0] == "":  # the module itself is the model: nothing inside is outermost
            break
        found.append((name, sub))
    return [sub for _, sub in found]


@contextlib.contextmanager
def attention_for_export(module: Any, attention: str) -> Iterator[list[str]]:
    """Within the block, every transformers model inside ``module`` uses ``attention`` (``eager``);
    ``as-loaded`` changes nothing. Yields what was switched (``["BertModel: sdpa -> eager"]``); the
    previous implementation is restored afterwards, so a shared reference stays as loaded."""
    if attention == "as-loaded":
        yield []
        return
    switched: list[tuple[Any, str]] = []
    notes: list[str] = []
    try:
        for model in _pretrained_models(module):
            before = str(model.config._attn_implementation)
            if before == attention:
                continue
            _set_attention(model, attention)
            switched.append((model, before))
            notes.append(f"{type(model).__name__}: {before} -> {attention}")
        yield notes
    finally:
        for model, before in reversed(switched):
            _set_attention(model, before)


def _set_attention(model: Any, implementation: str) -> None:
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        setter(implementation)
    else:  # older transformers read the config at each forward
        model.config._attn_implementation = implementation


def optimize_file(
    path: Path, settings: OptimizerSettings, *, fp16: bool = False
) -> tuple[Any, dict[str, int]]:
    """Run ``onnxruntime.transformers.optimizer`` (offline fusions only, ``opt_level=0``: no
    hardware-specific rewrites, so the graph serves every execution provider) on ``path``; with ``fp16``,
    convert with the optimizer's own converter (float32 inputs and outputs kept), which knows the fused
    operators. Returns the optimised ``ModelProto`` and the fused-operator counts."""
    from onnxruntime.transformers import optimizer

    try:
        optimized = optimizer.optimize_model(
            str(path), model_type=settings.model_type, num_heads=settings.num_heads,
            hidden_size=settings.hidden_size, opt_level=0, use_gpu=False,
        )  # fmt: skip
    except Exception as exc:  # the optimizer raises whatever its fusions raise
        raise ExportError(
            f"onnxruntime's transformer optimizer ({settings.describe()}) failed on {path.name}: {exc}"
        ) from exc
    if fp16:
        optimized.convert_float_to_float16(keep_io_types=True)
    optimized.topological_sort()
    model = optimized.model
    uses_contrib = any(node.domain == CONTRIB_DOMAIN for node in model.graph.node)
    if uses_contrib and not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.add(domain=CONTRIB_DOMAIN, version=1)  # as the optimizer's own save() does
    return model, op_counts(model)
