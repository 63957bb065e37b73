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

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backends.base import PackageModel, Tensors
from backends.device import parse_device, resolve_device
from backends.outputs import flatten_outputs
from packager.consumer import results


def consumer_load_kwargs(device: str) -> dict[str, Any]:
    """The keyword arguments ``AutoModel.from_pretrained`` gives a model class for ``device``."""
    parse_device(device)  # refuse what is no device, with weightpack's message
    return results.load_kwargs(device)


encode_texts = results.encode_texts
decode_texts = results.decode_texts


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
        return flatten_outputs(results.run(self.model, inputs))

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
