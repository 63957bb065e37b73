"""PaddleOCR PP-OCRv6 (the official small detector and recogniser that the PyPI package ``rapidocr`` 3.10
ships in its wheel, Apache-2.0) for the consumer's ``pp-ocrv6-det`` and ``pp-ocrv6-rec`` classes: the
references, rapidocr 3's own pipeline.

The consumer's classes are named for PP-OCRv6, so these are the very weights they were written for
(recipes/ppocr.toml and ppocr-det.toml package the older PP-OCRv4 files of ``rapidocr-onnxruntime`` into
the same classes). The package layout is the same: the upstream graph renamed ``inference.onnx`` and an
``inference.yml`` written by :mod:`ppocr_files`'s hooks (the recogniser's character list, 18,708 entries,
comes from the ONNX metadata; the detector's settings are :data:`ppocr_files.DET_CONFIG`, which are
rapidocr 3.10's own ``Det`` settings but for the resize limit and the dilation, see there).

The references run rapidocr 3's pre-processing, ONNX session and post-processing on the upstream file, so
parity compares the consumer's processing with an independent implementation. rapidocr 3 is installed in
the consumer's venv (scripts/setup_consumer.sh) without its dependencies but omegaconf and colorlog, which
its modules import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ppocr_files import DET_CONFIG, IMAGE_SHAPE, cpu_only, upstream_onnx

from backends.base import PackageModel, Tensors
from backends.errors import ModelLoadError

HOW_TO_INSTALL = "the PP-OCRv6 reference needs rapidocr 3.10 (scripts/setup_consumer.sh installs it)"


def rapidocr(module: str) -> Any:
    """``rapidocr.<module>``, or the error that says what to install."""
    try:
        return importlib.import_module(f"rapidocr.{module}")
    except ImportError as exc:
        raise ModelLoadError(HOW_TO_INSTALL) from exc


def rapidocr_config(section: str, **settings: Any) -> Any:
    """rapidocr 3's own configuration (its ``config.yaml``, as ``RapidOCR`` loads it) for one of its
    ``Det`` / ``Rec`` stages, with ``settings`` on top and the onnxruntime engine on the CPU."""
    rapidocr("utils.log").logger.setLevel("WARNING")  # not its INFO lines in pack's output
    cfg = rapidocr("utils.parse_parameters").ParseParams.load(rapidocr("main").DEFAULT_CFG_PATH)
    stage = cfg[section]
    stage.engine_cfg = cfg.EngineConfig.onnxruntime
    stage.engine_cfg.use_cuda = False
    for key, value in settings.items():
        stage[key] = value
    return stage


class RapidOCRv6Recognizer(PackageModel):
    """rapidocr 3's PP-OCR recogniser on the upstream ONNX file: ``image`` ``[N, H, W, 3]`` uint8 BGR in;
    ``raw`` (softmax per time step) and ``result`` (the text as code points) out, named like
    :class:`packager.consumer.model.ConsumerModel`'s outputs."""

    backend = "reference"

    def __init__(self, recognizer: Any, device: str) -> None:
        self.recognizer = recognizer
        self.device = device

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: Any = "cpu", **kwargs: Any):
        device = cpu_only(device)
        recognizer = rapidocr("ch_ppocr_rec").TextRecognizer
        path = upstream_onnx(Path(model_name_or_path))
        config = rapidocr_config("Rec", model_path=str(path), rec_img_shape=IMAGE_SHAPE)
        return cls(recognizer(config), device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        from packager.consumer.model import encode_texts

        (images,) = inputs.values()
        rec = self.recognizer
        _, height, width = IMAGE_SHAPE
        ratios = [img.shape[1] / img.shape[0] for img in images]
        ratio = max([width / height, *ratios])
        batch = np.stack([rec.resize_norm_img(np.ascontiguousarray(img), ratio) for img in images])
        raw = rec.session(batch.astype(np.float32))
        lines, _ = rec.postprocess_op(raw, False, wh_ratio_list=ratios, max_wh_ratio=ratio)
        return {"raw": raw, "result": encode_texts([text for text, _ in lines])}


class RapidOCRv6Detector(PackageModel):
    """rapidocr 3's PP-OCR text detector (DBNet) on the upstream ONNX file: ``image`` ``[N, H, W, 3]``
    uint8 BGR in; out, in the consumer's structure (``PPOCRv6DetectionOnnx``): ``raw`` the probability map
    of each image (``[H', W']`` float32) and ``result`` one detections record per image (``xyxy``,
    ``class_id`` 0 "text", ``confidence``, ``bboxes_metadata[j].polygon``: the 4-point quad), as
    docs/your-own-model.md section 11 describes. rapidocr's post-processing already orders, clips and
    filters the quads (its ``filter_det_res``)."""

    backend = "reference"

    def __init__(self, detector: Any, device: str) -> None:
        self.detector = detector
        self.device = device

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: Any = "cpu", **kwargs: Any):
        device = cpu_only(device)
        detector = rapidocr("ch_ppocr_det").TextDetector
        settings = {**DET_CONFIG, "model_path": str(upstream_onnx(Path(model_name_or_path)))}
        return cls(detector(rapidocr_config("Det", **settings, use_dilation=False)), device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Any:
        (images,) = inputs.values()
        det = self.detector
        raw, result = [], []
        for image in images:
            image = np.ascontiguousarray(image)
            pred = det.session(det.get_preprocess()(image))
            quads, scores = det.postprocess_op(pred, image.shape[:2])
            quads = [np.asarray(q).astype(np.int64) for q in quads]
            raw.append(pred[0, 0])
            result.append(
                {
                    "xyxy": np.array(
                        [[*q.min(axis=0), *q.max(axis=0)] for q in quads], dtype=np.float32
                    ).reshape(-1, 4),
                    "class_id": np.zeros(len(quads), dtype=np.int64),
                    "confidence": np.array(scores, dtype=np.float32),
                    "bboxes_metadata": [{"polygon": q} for q in quads],
                }
            )
        return {"raw": raw, "result": result}
