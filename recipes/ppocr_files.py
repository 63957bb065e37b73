"""PaddleOCR text recognition (PP-OCRv4, the weights ``rapidocr-onnxruntime`` ships) for the consumer's
``pp-ocrv6-rec`` class: the upstream reference and the ``inference.yml`` the consumer's class reads.

The consumer's ``PPOCRv6RecognitionOnnx`` wants ``inference.onnx`` and a PaddleOCR-style ``inference.yml``
(``PreProcess.transform_ops[].RecResizeImg.image_shape`` and ``PostProcess.character_dict``). PP-OCRv4 is
the same CTC recogniser family (input ``[N, 3, 48, W]``, softmax over blank + characters + space), and its
ONNX file carries the character list in its metadata (``character``, one per line), so the package is the
upstream graph renamed plus a generated ``inference.yml``.

The reference is rapidocr's own pipeline (its resize/normalise step, the ONNX session and its CTC decoder),
so parity compares the consumer's pre- and post-processing with an independent implementation.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import ExportRequest, PackageModel, Tensors
from backends.device import resolve_device
from backends.errors import ModelLoadError

IMAGE_SHAPE = [3, 48, 320]


def cpu_only(device: Any) -> str:
    """The device, which must be the CPU: the rapidocr references run there."""
    device = resolve_device(device)
    if device != "cpu":
        raise ModelLoadError("the rapidocr reference runs on the CPU")
    return device


def rapidocr_class(module: str, name: str) -> Any:
    """``rapidocr_onnxruntime.<module>.<name>``, or a ModelLoadError that says how to install it."""
    try:
        return getattr(importlib.import_module(f"rapidocr_onnxruntime.{module}"), name)
    except ImportError as exc:
        raise ModelLoadError(
            "the PP-OCR reference needs rapidocr-onnxruntime (scripts/setup_consumer.sh installs it)"
        ) from exc


def upstream_onnx(path: Path) -> Path:
    """The single ``.onnx`` file of the upstream (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_file():
        return path
    found = sorted(path.glob("*.onnx"))
    if len(found) != 1:
        names = [p.name for p in found]
        raise ModelLoadError(f"{path}: expected exactly one .onnx recogniser, found {names}")
    return found[0]


def characters(onnx_path: Path) -> list[str]:
    """The character list PaddleOCR's exporter stored in the ONNX metadata (``character``)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ModelLoadError(f"{onnx_path.name}: no 'character' list in the ONNX metadata")
    return meta["character"].splitlines()


def inference_yml(request: ExportRequest) -> str:
    """The consumer's ``inference.yml`` for the upstream recogniser (a ``files`` hook of the recipe)."""
    import yaml

    config = {
        "Global": {"model_name": f"{request.architecture}-{request.variant}"},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"RecResizeImg": {"image_shape": list(IMAGE_SHAPE)}},
                {"KeepKeys": {"keep_keys": ["image"]}},
            ]
        },
        "PostProcess": {
            "name": "CTCLabelDecode",
            "character_dict": characters(upstream_onnx(request.upstream_dir)),
        },
    }
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


class RapidOCRRecognizer(PackageModel):
    """rapidocr's PP-OCR recogniser on the upstream ONNX file: ``image`` ``[N, H, W, 3]`` uint8 BGR in;
    ``raw`` (softmax per time step) and ``result`` (the text as code points) out, named like
    :class:`packager.consumer.model.ConsumerModel`'s outputs."""

    backend = "reference"

    def __init__(self, recognizer: Any, device: str) -> None:
        self.recognizer = recognizer
        self.device = device

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: Any = "cpu", **kwargs: Any):
        device = cpu_only(device)
        TextRecognizer = rapidocr_class("ch_ppocr_rec", "TextRecognizer")
        config = {
            "model_path": str(upstream_onnx(Path(model_name_or_path))),
            "rec_img_shape": list(IMAGE_SHAPE),
            "rec_batch_num": 6,
            "use_cuda": False,
            "use_dml": False,
            "intra_op_num_threads": -1,
            "inter_op_num_threads": -1,
        }
        return cls(TextRecognizer(config), device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        from packager.consumer.model import encode_texts

        (images,) = inputs.values()
        rec = self.recognizer
        _, height, width = IMAGE_SHAPE
        ratio = max([width / height] + [img.shape[1] / img.shape[0] for img in images])
        batch = np.stack([rec.resize_norm_img(np.ascontiguousarray(img), ratio) for img in images])
        raw = rec.session(batch.astype(np.float32))[0]
        texts = [text for text, *_ in rec.postprocess_op(raw)]
        return {"raw": raw, "result": encode_texts(texts)}


# ------------------------------------------------------------------------------------ text detection

# The detector's settings, written into the package's inference.yml (what the consumer's DBNet class reads)
# and given to rapidocr's reference detector: rapidocr's own (its config.yaml: mean/std 0.5, thresh 0.3,
# box_thresh 0.5, unclip 1.6), resized as PaddleOCR's DetResizeForTest "max" 960 (images up to 960 px are
# not scaled), without rapidocr's dilation, which the consumer's class does not do.
DET_CONFIG = {
    "limit_side_len": 960,
    "limit_type": "max",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "thresh": 0.3,
    "box_thresh": 0.5,
    "max_candidates": 1000,
    "unclip_ratio": 1.6,
}


def det_inference_yml(request: ExportRequest) -> str:
    """The consumer's ``inference.yml`` for the upstream DBNet detector (a ``files`` hook of the recipe)."""
    import yaml

    c = DET_CONFIG
    config = {
        "Global": {"model_name": f"{request.architecture}-{request.variant}"},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"DetResizeForTest": {"limit_side_len": c["limit_side_len"], "limit_type": c["limit_type"]}},
                {"NormalizeImage": {"mean": c["mean"], "std": c["std"], "scale": "1./255.", "order": "hwc"}},
                {"ToCHWImage": None},
                {"KeepKeys": {"keep_keys": ["image", "shape"]}},
            ]
        },
        "PostProcess": {
            "name": "DBPostProcess",
            **{k: c[k] for k in ("thresh", "box_thresh", "max_candidates", "unclip_ratio")},
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


class RapidOCRDetector(PackageModel):
    """rapidocr's PP-OCR text detector (DBNet) on the upstream ONNX file: ``image`` ``[N, H, W, 3]`` uint8
    BGR in; out, in the consumer's structure (``PPOCRv6DetectionOnnx``): ``raw`` the probability map of
    each image (``[H', W']`` float32) and ``result`` one detections record per image: ``xyxy``,
    ``class_id`` (0, "text"), ``confidence`` and ``bboxes_metadata[j].polygon`` (the 4-point quad). The
    recipe's task check matches the boxes by IoU, so the 1 px the two post-processings round differently
    does not matter."""

    backend = "reference"

    def __init__(self, detector: Any, device: str) -> None:
        self.detector = detector
        self.device = device

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, device: Any = "cpu", **kwargs: Any):
        device = cpu_only(device)
        TextDetector = rapidocr_class("ch_ppocr_det", "TextDetector")
        config = {
            **DET_CONFIG,
            "model_path": str(upstream_onnx(Path(model_name_or_path))),
            "use_dilation": False,
            "score_mode": "fast",
            "use_cuda": False,
            "use_dml": False,
            "intra_op_num_threads": -1,
            "inter_op_num_threads": -1,
        }
        return cls(TextDetector(config), device)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Any:
        (images,) = inputs.values()
        det = self.detector
        raw, result = [], []
        for image in images:
            image = np.ascontiguousarray(image)
            height, width = image.shape[:2]
            pred = det.infer(det.get_preprocess(max(height, width))(image))[0]
            boxes, scores = det.postprocess_op(pred, (height, width))
            quads, confidence = [], []
            for box, score in zip(boxes, scores, strict=True):  # rapidocr's filter_tag_det_res, scores kept
                box = det.clip_det_res(det.order_points_clockwise(box), height, width)
                if int(np.linalg.norm(box[0] - box[1])) > 3 and int(np.linalg.norm(box[0] - box[3])) > 3:
                    quads.append(box.astype(np.int64))
                    confidence.append(score)
            raw.append(pred[0, 0])
            result.append(
                {
                    "xyxy": np.array(
                        [[*q.min(axis=0), *q.max(axis=0)] for q in quads], dtype=np.float32
                    ).reshape(-1, 4),
                    "class_id": np.zeros(len(quads), dtype=np.int64),
                    "confidence": np.array(confidence, dtype=np.float32),
                    "bboxes_metadata": [{"polygon": q} for q in quads],
                }
            )
        return {"raw": raw, "result": result}
