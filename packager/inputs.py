"""Sample inputs from a recipe's ``[inputs]`` table, as named numpy arrays.

The same arrays feed the reference and every package, so parity compares like with like. Several sets are
built (different texts or random draws) for the latency harness to rotate among (:func:`latency_sets`, from
the recipe and the parity batch alone); none is all zeros.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from backends.base import Tensors
from backends.errors import UserModelError
from packager.recipes import InputsRecipe


def build_inputs(
    spec: InputsRecipe, upstream_dir: Path, batch_size: int, set_index: int = 0, step: int = 0
) -> Tensors:
    """One batch of ``batch_size`` samples; ``set_index`` picks which texts / which random draw, ``step``
    which call of a sequence (its own draw; state inputs keep their initial value)."""
    if spec.kind == "text":
        return _text_batch(spec, upstream_dir, batch_size, set_index)
    if spec.kind == "text-image":
        return _text_image_batch(spec, batch_size, set_index)
    return _tensor_batch(spec, batch_size, set_index, step)


def latency_sets(spec: InputsRecipe, parity: Tensors, batch_size: int) -> list[Tensors]:
    """``spec.sets`` different batches of ``batch_size`` to rotate among while timing: the one builder
    every entry times with (``pack``, compare's measure step, the nightly). It needs the recipe and the
    parity batch only, never the upstream files, so a golden is enough:

    * tensors are drawn as :func:`build_inputs` draws them, a state input at random (a step from some state
      costs what a step from zeros costs, and timing on zeros is refused: kernels take shortcuts on them);
    * texts are rows of the parity batch (which holds every text, in order) picked as
      :func:`_texts_for` picks texts, with the padding no row of the batch needs removed: exactly what
      tokenizing those texts together gives (the tokenizer pads to the longest of its batch).
    """
    if spec.kind == "text":
        return [_text_rows(spec, parity, batch_size, i) for i in range(spec.sets)]
    if spec.state:
        tensors = [replace(t, initial="random") if t.state_from else t for t in spec.tensors]
        spec = replace(spec, tensors=tensors)
    return [build_inputs(spec, Path(), batch_size, i) for i in range(spec.sets)]


def _text_rows(spec: InputsRecipe, parity: Tensors, batch_size: int, set_index: int) -> Tensors:
    rows = _rows(len(spec.texts), batch_size, set_index)
    batch = {k: np.asarray(v)[rows] for k, v in parity.items()}
    mask = batch.get("attention_mask")
    if mask is not None and mask.ndim == 2:
        used = np.flatnonzero(mask.any(axis=0))  # columns some text of this batch reaches
        keep = slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 0)
        width = mask.shape[1]
        batch = {k: v[:, keep] if v.ndim == 2 and v.shape[1] == width else v for k, v in batch.items()}
    return {k: np.ascontiguousarray(v) for k, v in batch.items()}


def parity_inputs(spec: InputsRecipe, upstream_dir: Path) -> Tensors:
    """The parity batch: every sample text at once, or the tensors at the batch size as written (a batch-1
    shape is checked at 1; ``packager.reference.shape_cases`` adds a second sample where it proves the
    batch axis dynamic)."""
    size = len(spec.texts) if spec.kind in ("text", "text-image") else spec.batch_size
    return build_inputs(spec, upstream_dir, size, 0)


def sequence_feeds(spec: InputsRecipe, upstream_dir: Path, batch_size: int) -> list[Tensors]:
    """The ``spec.steps`` calls of a sequence: a fresh draw of every input at each step; state inputs
    appear at the first step only (later steps take them from the outputs that feed them)."""
    state = spec.state
    feeds = [build_inputs(spec, upstream_dir, batch_size, 0, step) for step in range(spec.steps)]
    return [feeds[0], *({k: v for k, v in f.items() if k not in state} for f in feeds[1:])]


_TOKENIZERS: dict[str, object] = {}


def _tokenizer(upstream_dir: Path) -> object:
    key = str(upstream_dir)
    if key not in _TOKENIZERS:
        from transformers import AutoTokenizer

        try:
            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(key, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # no usable tokenizer files: the source's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserModelError(
                f"[inputs] kind = 'text' needs a tokenizer, and none loads from the source {upstream_dir} "
                f"({first}) (accepted: a source holding tokenizer files, e.g. a transformers snapshot)"
            ) from None
    return _TOKENIZERS[key]


def _text_batch(spec: InputsRecipe, upstream_dir: Path, batch_size: int, set_index: int) -> Tensors:
    # Each set starts one text further than a plain stride would, so sets differ even when the batch size
    # is a multiple of the number of texts (batch 8 of 8 texts: rotated orders, not 4 identical batches).
    texts = _texts_for(spec, batch_size, set_index)
    encoded = _tokenizer(upstream_dir)(
        texts, padding=True, truncation=True, max_length=spec.max_length, return_tensors="np"
    )
    return {name: np.ascontiguousarray(arr.astype(np.int64)) for name, arr in encoded.items()}


def _texts_for(spec: InputsRecipe, batch_size: int, set_index: int) -> list[str]:
    return [spec.texts[i] for i in _rows(len(spec.texts), batch_size, set_index)]


def _rows(n: int, batch_size: int, set_index: int) -> list[int]:
    """Which of ``n`` texts set ``set_index`` holds: each set starts one text further than a plain stride
    would, so sets differ even when the batch size is a multiple of ``n``."""
    start = set_index * (batch_size + 1)
    return [(start + i) % n for i in range(batch_size)]


def render_text_line(text: str, height: int, width: int, channels: int = 3) -> np.ndarray:
    """``text`` in black on white, as a detector would crop a text line: ``[height, width, channels]``
    uint8, the font shrunk until the text fits (PIL's built-in font, so no font file is needed)."""
    from PIL import Image, ImageDraw, ImageFont

    size = int(height * 0.75)
    while True:
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = font.getbbox(text)
        if right - left + 8 <= width or size <= 8:
            break
        size -= 2
    image = Image.new("L", (width, height), 255)
    y = (height - (bottom - top)) // 2 - top
    ImageDraw.Draw(image).text((4 - left, y), text, fill=0, font=font)
    line = np.asarray(image, dtype=np.uint8)
    return np.repeat(line[:, :, None], channels, axis=2)


def _text_image_batch(spec: InputsRecipe, batch_size: int, set_index: int) -> Tensors:
    """The recipe's texts rendered as text-line images (OCR recognisers): one uint8 tensor."""
    t = spec.tensors[0]
    _, height, width, channels = t.shape
    texts = _texts_for(spec, batch_size, set_index)
    lines = [render_text_line(text, height, width, channels) for text in texts]
    return {t.name: np.ascontiguousarray(np.stack(lines))}


def _tensor_batch(spec: InputsRecipe, batch_size: int, set_index: int, step: int = 0) -> Tensors:
    rng = np.random.default_rng([spec.seed, set_index] + ([step] if step else []))
    out: Tensors = {}
    for t in spec.tensors:
        if t.value is not None:  # a constant: the same 0-d value at every call
            out[t.name] = np.asarray(t.value, dtype=t.dtype)
            continue
        shape = list(t.shape)
        if t.batch_axis is not None and len(shape) > t.batch_axis:
            shape[t.batch_axis] = batch_size
        if t.state_from and t.initial == "zeros":
            arr = np.zeros(shape)
        elif np.issubdtype(np.dtype(t.dtype), np.integer):
            arr = rng.integers(int(t.low), max(int(t.high), int(t.low) + 1), size=shape)
        elif t.dtype == "bool":
            arr = rng.random(shape) < 0.5
        else:
            arr = rng.uniform(t.low, t.high, size=shape)
        out[t.name] = np.ascontiguousarray(np.asarray(arr).astype(t.dtype))
    return out
