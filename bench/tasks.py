"""Task-level parity checks beside the tensor checks: what a consumer of the outputs would notice.

* embeddings: minimum per-row cosine similarity (:func:`bench.parity.cosine_rows`);
* classification: top-1 (argmax) agreement and top-k set overlap of the logits;
* detection: boxes matched one-to-one by IoU (greedy, best IoU first), then the fraction of reference
  boxes matched, their mean IoU and class agreement among matched pairs.

Each check returns ``(value, threshold, passed)`` triples through :func:`task_checks`, which picks the
checks a task's outputs support. Thresholds are module constants, documented in docs/measurement.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bench.parity import cosine_rows

TOP1_MIN = 1.0  # every argmax must agree at fp32; an fp16 package flipping a near-tie fails loudly
TOPK = 5
TOPK_MIN = 0.9  # mean overlap of the top-5 sets
DET_IOU_MATCH = 0.5
DET_RECALL_MIN = 0.95
DET_MEAN_IOU_MIN = 0.9
DET_CLASS_MIN = 0.99
CLASSIFICATION_TASKS = ("classification", "multi-label-classification")
DETECTION_TASKS = ("object-detection", "open-vocabulary-object-detection", "instance-segmentation")
LOGIT_NAMES = ("logits", "scores", "output")
BOX_NAMES = ("boxes", "pred_boxes", "bboxes", "xyxy")
CLASS_NAMES = ("labels", "class_ids", "classes", "class_id")


@dataclass(frozen=True)
class TaskCheck:
    check: str
    output: str
    value: float
    threshold: float
    passed: bool


def topk_agreement(reference: np.ndarray, actual: np.ndarray, k: int = TOPK) -> float:
    """Mean over rows of ``|topk(ref) ∩ topk(actual)| / k`` (k capped at the class count).
    Logits are ``(..., classes)``; leading dims are rows."""
    r = np.asarray(reference, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if r.shape != a.shape or r.ndim == 0:
        raise ValueError(f"logit shapes differ: {a.shape} vs reference {r.shape}")
    r = r.reshape(-1, r.shape[-1])
    a = a.reshape(-1, a.shape[-1])
    k = max(1, min(k, r.shape[1]))
    top_r = np.argsort(-r, axis=1, kind="stable")[:, :k]
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    overlap = [len(set(x) & set(y)) / k for x, y in zip(top_r.tolist(), top_a.tolist(), strict=True)]
    return float(np.mean(overlap))


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Fraction of rows whose argmax class is the same."""
    r = np.asarray(reference)
    a = np.asarray(actual)
    if r.shape != a.shape or r.ndim == 0:
        raise ValueError(f"logit shapes differ: {a.shape} vs reference {r.shape}")
    r = r.reshape(-1, r.shape[-1])
    a = a.reshape(-1, a.shape[-1])
    return float(np.mean(np.argmax(r, axis=1) == np.argmax(a, axis=1)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` boxes in ``x1, y1, x2, y2`` form -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(frozen=True)
class DetectionAgreement:
    recall: float
    """Fraction of reference boxes matched by a package box with IoU >= the match threshold."""
    mean_iou: float
    """Mean IoU of the matched pairs (1.0 when there is nothing to match)."""
    class_agreement: float
    """Fraction of matched pairs with the same class."""
    extra: int
    """Package boxes left unmatched."""


def detection_agreement(
    ref_boxes: np.ndarray,
    ref_classes: np.ndarray | None,
    boxes: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float = DET_IOU_MATCH,
) -> DetectionAgreement:
    """Greedy one-to-one matching by descending IoU (class-agnostic, so a class flip is seen as one)."""
    iou = box_iou(ref_boxes, boxes)
    n, m = iou.shape
    if n == 0:
        return DetectionAgreement(1.0, 1.0, 1.0, m)
    pairs = []
    used_r, used_a = set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), m)
        if iou[i, j] < iou_threshold:
            break
        if i in used_r or j in used_a:
            continue
        used_r.add(i)
        used_a.add(j)
        pairs.append((i, j))
    if not pairs:
        return DetectionAgreement(0.0, 0.0, 0.0, m)
    mean_iou = float(np.mean([iou[i, j] for i, j in pairs]))
    if ref_classes is None or classes is None:
        agree = 1.0
    else:
        rc = np.asarray(ref_classes).reshape(-1)
        ac = np.asarray(classes).reshape(-1)
        agree = float(np.mean([rc[i] == ac[j] for i, j in pairs]))
    return DetectionAgreement(len(pairs) / n, mean_iou, agree, m - len(pairs))


def _find(outputs: Mapping[str, np.ndarray], names: tuple[str, ...]) -> str | None:
    for name in outputs:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in names or name in names:
            return name
    return None


def task_checks(
    task: str,
    reference: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    min_cosine: float | None = None,
) -> list[TaskCheck]:
    """The task-level checks that apply to ``task`` and the outputs present. Shape mismatches are left to
    the tensor checks (which already fail); a check that cannot run is not reported."""
    checks: list[TaskCheck] = []
    if task == "embedding" and min_cosine is not None:
        name = "sentence_embedding" if "sentence_embedding" in reference else next(iter(reference), None)
        if name and name in actual and np.shape(actual[name]) == np.shape(reference[name]):
            value = cosine_rows(reference[name], actual[name])
            checks.append(TaskCheck("min_row_cosine", name, value, min_cosine, value >= min_cosine))
    elif task in CLASSIFICATION_TASKS:
        name = _find(reference, LOGIT_NAMES) or next(iter(reference), None)
        if name and name in actual and np.shape(actual[name]) == np.shape(reference[name]):
            top1 = top1_agreement(reference[name], actual[name])
            checks.append(TaskCheck("top1_agreement", name, top1, TOP1_MIN, top1 >= TOP1_MIN))
            topk = topk_agreement(reference[name], actual[name], TOPK)
            checks.append(TaskCheck(f"top{TOPK}_agreement", name, topk, TOPK_MIN, topk >= TOPK_MIN))
    elif task in DETECTION_TASKS:
        bname = _find(reference, BOX_NAMES)
        if bname and bname in actual:
            cname = _find(reference, CLASS_NAMES)
            rb = np.asarray(reference[bname])
            ab = np.asarray(actual[bname])
            if rb.ndim == 3:  # batched (B, N, 4): pool the images
                rb, ab = rb.reshape(-1, 4), ab.reshape(-1, 4)
            det = detection_agreement(
                rb,
                reference.get(cname) if cname else None,
                ab,
                actual.get(cname) if cname else None,
            )
            checks += [
                TaskCheck(
                    "box_recall@iou0.5", bname, det.recall, DET_RECALL_MIN, det.recall >= DET_RECALL_MIN
                ),
                TaskCheck(
                    "box_mean_iou", bname, det.mean_iou, DET_MEAN_IOU_MIN, det.mean_iou >= DET_MEAN_IOU_MIN
                ),
            ]
            if cname:
                checks.append(
                    TaskCheck(
                        "class_agreement",
                        cname,
                        det.class_agreement,
                        DET_CLASS_MIN,
                        det.class_agreement >= DET_CLASS_MIN,
                    )
                )
    return checks
