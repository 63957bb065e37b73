"""Run one of the consumer's model objects as a server does, and keep what it returned, readable as arrays.

What :class:`packager.consumer.model.ConsumerModel` and the generated fixtures (``pack --fixtures``, which
copy this file verbatim) share, so both load and call the consumer's class the same way:

* :func:`load_kwargs`: the keyword arguments ``AutoModel.from_pretrained`` gives a model class (``device``
  as a ``torch.device``, the onnxruntime providers for it, ...);
* :func:`run`: the single input batch handed to ``infer`` as a list of images; ``raw`` (what ``forward``
  returned, caught on the way through) and ``result`` (the post-processed answer) returned;
* :func:`readable`: text leaves as int32 Unicode code points (:func:`encode_texts`), one zero-padded row
  per image, so text is compared and kept in goldens like any array.

Imports nothing but numpy (torch only inside :func:`load_kwargs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def load_kwargs(device: str) -> dict[str, Any]:
    """The keyword arguments ``AutoModel.from_pretrained`` gives a model class for ``device``
    (``cpu``, ``cuda``, ``cuda:N``)."""
    import torch

    kind, _, index = str(device).partition(":")
    providers: list[Any] = ["CPUExecutionProvider"]
    if kind == "cuda":
        providers = [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    return {
        "device": torch.device(device),
        "onnx_execution_providers": providers,
        "default_onnx_trt_options": True,
        "engine_host_code_allowed": True,
    }


def encode_texts(texts: Sequence[str]) -> np.ndarray:
    """``["ab", "c"]`` -> ``[[97, 98], [99, 0]]`` (int32 code points, zero-padded)."""
    width = max((len(t) for t in texts), default=0)
    out = np.zeros((len(texts), max(width, 1)), dtype=np.int32)
    for row, text in enumerate(texts):
        out[row, : len(text)] = [ord(c) for c in text]
    return out


def decode_texts(codes: np.ndarray) -> list[str]:
    return ["".join(chr(int(c)) for c in row if c) for row in np.atleast_2d(codes)]


def readable(value: Any) -> Any:
    """Text leaves become code-point arrays; everything else is left as it is (for flattening)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return encode_texts(value)
    if isinstance(value, str):
        return encode_texts([value])
    if isinstance(value, (list, tuple)):
        return type(value)(readable(v) for v in value)
    if isinstance(value, Mapping):
        return {k: readable(v) for k, v in value.items()}
    return value


def run(model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """``{"result": ..., "raw": ...}``: ``model.infer`` on the inputs as the consumer takes them (a single
    ``[N, ...]`` batch as a list of ``N`` arrays), with ``forward``'s return value caught (``raw``, absent
    when the class has no ``forward``). The class itself is untouched: the spy is an instance attribute."""
    caught: list[Any] = []
    forward = getattr(model, "forward", None)
    if callable(forward):

        def spy(*args: Any, **kwargs: Any) -> Any:
            out = forward(*args, **kwargs)
            caught.append(out)
            return out

        model.forward = spy
    try:
        if len(inputs) == 1:
            (batch,) = inputs.values()
            result = model.infer([np.ascontiguousarray(sample) for sample in batch])
        else:
            result = model.infer(**inputs)
    finally:
        if callable(forward):
            del model.forward
    outputs: dict[str, Any] = {"result": readable(result)}
    if caught:
        outputs["raw"] = caught[0] if len(caught) == 1 else caught
    return outputs
