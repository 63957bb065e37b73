"""Load a package through one of the consumer's own model classes, exactly as the consumer does, and
read its outputs as named arrays, so parity, latency and goldens see what production sees.

A recipe names the class (``model_class = "inference_models.models.pp_ocrv6.pp_ocrv6_recognition_onnx:
PPOCRv6RecognitionOnnx"``); :func:`packager.consumer.load_model_class` then hands back
``ConsumerModel.bind(that_class)``. Loading calls ``that_class.from_pretrained(dir, **consumer_kwargs)``
with the keyword arguments ``AutoModel.from_pretrained`` passes (``device`` as a ``torch.device``,
``onnx_execution_providers`` for the device, ``default_onnx_trt_options``, ``engine_host_code_allowed``).

Running: the recipe's single input (a batch, ``[N, H, W, C]`` images for vision classes) goes to the
consumer's ``infer`` as a list of ``N`` arrays, the way a server hands it images. Outputs:

- ``raw``: what the class's ``forward`` returned (the network's output, before post-processing), caught
  on the way through;
- ``result``: the post-processed answer, flattened (dataclasses such as ``Detections``, lists of tensors);
  text (OCR) becomes ``int32`` Unicode code points, one zero-padded row per image, so it is compared and
  kept in goldens like any array (:meth:`ConsumerModel.texts` turns it back into strings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backends.base import PackageModel, Tensors
from backends.device import parse_device, resolve_device
from backends.outputs import flatten_outputs


def consumer_load_kwargs(device: str) -> dict[str, Any]:
    """The keyword arguments ``AutoModel.from_pretrained`` gives a model class for ``device``."""
    import torch

    kind, index = parse_device(device)
    providers: list[Any] = ["CPUExecutionProvider"]
    if kind == "cuda":
        providers = [("CUDAExecutionProvider", {"device_id": index or 0}), "CPUExecutionProvider"]
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


def _readable(value: Any) -> Any:
    """Text leaves become code-point arrays; everything else is left to :func:`flatten_outputs`."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return encode_texts(value)
    if isinstance(value, str):
        return encode_texts([value])
    if isinstance(value, (list, tuple)):
        return type(value)(_readable(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _readable(v) for k, v in value.items()}
    return value


class ConsumerModel(PackageModel):
    """A consumer model object behind the :class:`PackageModel` interface."""

    backend = "consumer"
    consumer_class: ClassVar[Any] = None
    consumer_ref: ClassVar[str] = ""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = resolve_device(device)

    @classmethod
    def bind(cls, consumer_class: Any, ref: str) -> type[ConsumerModel]:
        """A subclass whose ``from_pretrained`` loads through ``consumer_class``."""
        name = f"Consumer[{getattr(consumer_class, '__name__', ref)}]"
        return type(name, (cls,), {"consumer_class": consumer_class, "consumer_ref": ref})

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: Any = "cpu", **kwargs: Any):
        if cls.consumer_class is None:
            raise TypeError("ConsumerModel.from_pretrained needs a bound class: ConsumerModel.bind(cls, ref)")
        device = resolve_device(device)
        model = cls.consumer_class.from_pretrained(str(model_name_or_path), **consumer_load_kwargs(device))
        return cls(model, device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        caught: list[Any] = []
        forward = getattr(self.model, "forward", None)
        if callable(forward):

            def spy(*args: Any, **kwargs: Any) -> Any:
                out = forward(*args, **kwargs)
                caught.append(out)
                return out

            self.model.forward = spy  # an instance attribute: the class is untouched
        try:
            if len(inputs) == 1:
                (batch,) = inputs.values()
                result = self.model.infer([np.ascontiguousarray(sample) for sample in batch])
            else:
                result = self.model.infer(**inputs)
        finally:
            if callable(forward):
                del self.model.forward
        outputs: dict[str, Any] = {"result": _readable(result)}
        if caught:
            outputs["raw"] = caught[0] if len(caught) == 1 else caught
        return flatten_outputs(outputs)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    @staticmethod
    def texts(outputs: Mapping[str, np.ndarray], name: str = "result") -> list[str] | None:
        """The strings an OCR class read, back from their code points (None when there is no such output)."""
        codes = outputs.get(name)
        if codes is None or np.asarray(codes).dtype != np.int32:
            return None
        return decode_texts(np.asarray(codes))
