"""Results checked by task, not by element names: what a consumer of the outputs would notice.

The one home of the task checks (``bench.parity`` compares elements); their arithmetic is in
:mod:`bench.task_metrics`:

* detections: boxes (and polygons) matched one-to-one by IoU, greedy, best first; then recall, precision,
  the worst matched box and polygon IoU, class agreement and the largest confidence difference;
* text: exact-match rate and character error rate (Levenshtein distance / reference length);
* classification: top-1 agreement and top-k set overlap of the scores;
* embeddings: the smallest per-row cosine similarity;
* keypoints: instances matched by mean keypoint distance, then the largest keypoint distance.

Two entries. :func:`task_checks` picks the checks a task's outputs support by name (``pack`` without a
declared check). :func:`run_task_check` runs the one check a recipe declares (:class:`TaskCheckSpec`,
``[parity.task]``) on the structured result read back from the flattened outputs (``result.<i>.xyxy``,
``result.<i>.bboxes_metadata.<j>.polygon``, text as int32 code points): :func:`covers` says which outputs
it judges, and those are left out of the element comparison.

Both modules import nothing but numpy, the standard library and each other (relatively): generated
fixtures copy them verbatim, so the consumer's environment checks with the same code, without weightpack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .task_metrics import (  # noqa: F401  (box_iou, polygon_iou: re-exported, the comparators' one home)
    DET_IOU_MATCH,
    TOPK,
    box_iou,
    character_error_rate,
    detection_agreement,
    keypoint_agreement,
    min_row_cosine,
    polygon_iou,
    top1_agreement,
    topk_agreement,
)

TOP1_MIN = 1.0  # every argmax must agree at fp32; an fp16 package flipping a near-tie fails loudly
TOPK_MIN = 0.9  # mean overlap of the top-5 sets
DET_RECALL_MIN = 0.95
DET_MEAN_IOU_MIN = 0.9
DET_CLASS_MIN = 0.99
CLASSIFICATION_TASKS = ("classification", "multi-label-classification")
DETECTION_TASKS = ("object-detection", "open-vocabulary-object-detection", "instance-segmentation")
LOGIT_NAMES = ("logits", "scores", "output")
BOX_NAMES = ("boxes", "pred_boxes", "bboxes", "xyxy")
CLASS_NAMES = ("labels", "class_ids", "classes", "class_id")

# The checks a recipe may declare, and each one's thresholds with their defaults (a recipe overrides any).
CHECK_DEFAULTS: dict[str, dict[str, float]] = {
    "detection": {
        "iou": DET_IOU_MATCH,  # a pair matches at this box IoU or more
        "min_recall": 1.0,  # fraction of reference boxes matched
        "min_precision": 1.0,  # fraction of package boxes matched
        "min_box_iou": 0.8,  # worst matched pair's box IoU
        "min_polygon_iou": 0.8,  # worst matched pair's polygon IoU (where both have polygons)
        "min_class_agreement": 1.0,
        "max_confidence_diff": 0.05,
    },
    "text": {"max_cer": 0.0},
    "classification": {"k": TOPK, "min_top1": TOP1_MIN, "min_topk": TOPK_MIN},
    "embedding": {"min_cosine": 0.9999},
    "keypoints": {"max_distance": 2.0, "min_recall": 1.0},
}


@dataclass(frozen=True)
class TaskCheck:
    check: str
    output: str
    value: float
    threshold: float
    passed: bool
    rule: str = ">="
    """How ``value`` is held to ``threshold``: ``>=`` (at least) or ``<=`` (at most)."""


@dataclass(frozen=True)
class TaskCheckSpec:
    """The one task check a recipe declares: ``kind`` (a key of :data:`CHECK_DEFAULTS`), the output that
    holds the structured result (``result``: every ``result.*`` name), and threshold overrides."""

    kind: str
    output: str = "result"
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def threshold(self, name: str) -> float:
        return float(self.thresholds.get(name, CHECK_DEFAULTS[self.kind][name]))


def _check(check: str, output: str, value: float, threshold: float, rule: str = ">=") -> TaskCheck:
    passed = value >= threshold if rule == ">=" else value <= threshold
    return TaskCheck(check, output, float(value), float(threshold), bool(passed), rule)


# ------------------------------------------------------------------------------------ structured results


def covers(spec: TaskCheckSpec, name: str) -> bool:
    """Whether the declared check judges output ``name`` (then the element comparison leaves it out)."""
    return name == spec.output or name.startswith(spec.output + ".")


def _tree(outputs: Mapping[str, Any], prefix: str) -> Any:
    """The flattened outputs under ``prefix`` as nested dicts (``result.0.xyxy`` -> ``{"0": {"xyxy"}}``);
    the array itself when ``prefix`` names a leaf; None when nothing is there."""
    if prefix in outputs:
        return np.asarray(outputs[prefix])
    tree: dict[str, Any] = {}
    for name, value in outputs.items():
        if name.startswith(prefix + "."):
            node = tree
            *parents, leaf = name[len(prefix) + 1 :].split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = np.asarray(value)
    return tree or None


def _items(node: Any) -> list[Any]:
    """A flattened list (keys ``0``, ``1``, ...) back in order; a single array stays one item."""
    if isinstance(node, dict) and node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return [node]


def _points(node: Any) -> np.ndarray:
    if isinstance(node, dict):
        return np.stack([np.asarray(p, dtype=np.float64).reshape(2) for p in _items(node)])
    return np.asarray(node, dtype=np.float64).reshape(-1, 2)


def read_detections(outputs: Mapping[str, Any], prefix: str = "result") -> list[dict[str, Any]]:
    """Per image: ``xyxy`` ``(N, 4)``, ``class_id``, ``confidence`` and ``polygons`` (``bboxes_metadata.
    <j>.polygon``, a list of ``(K, 2)``, or None) from the consumer's ``Detections`` as flattened."""
    tree = _tree(outputs, prefix)
    if tree is None:
        tree = {}
    images = [tree] if isinstance(tree, dict) and "xyxy" in tree else _items(tree)
    found = []
    for image in images:
        if not isinstance(image, dict) or "xyxy" not in image:
            raise ValueError(f"{prefix}: no detections (expected {prefix}.<i>.xyxy or {prefix}.xyxy)")
        meta = _items(image.get("bboxes_metadata") or {})
        polygons = [_points(m["polygon"]) for m in meta if isinstance(m, dict) and "polygon" in m]
        xyxy = np.asarray(image["xyxy"], dtype=np.float64).reshape(-1, 4)
        found.append(
            {
                "xyxy": xyxy,
                "class_id": image.get("class_id"),
                "confidence": image.get("confidence"),
                "polygons": polygons if len(polygons) == len(xyxy) and polygons else None,
            }
        )
    return found


def read_texts(outputs: Mapping[str, Any], prefix: str = "result") -> list[str]:
    """Text read back from int32 Unicode code points, one zero-padded row per image."""
    tree = _tree(outputs, prefix)
    if not isinstance(tree, np.ndarray) or tree.dtype.kind not in "iu":
        raise ValueError(f"{prefix}: no text (expected int32 code points, one row per image)")
    return ["".join(chr(int(c)) for c in row if c) for row in np.atleast_2d(tree)]


def _array(outputs: Mapping[str, Any], prefix: str, field_name: str) -> np.ndarray:
    """The array at ``prefix`` itself, else its ``field_name`` (``result.confidence``)."""
    tree = _tree(outputs, prefix)
    if isinstance(tree, dict) and isinstance(tree.get(field_name), np.ndarray):
        return tree[field_name]
    if isinstance(tree, np.ndarray):
        return tree
    raise ValueError(f"{prefix}: expected an array at {prefix} or {prefix}.{field_name}")


def run_task_check(
    spec: TaskCheckSpec, reference: Mapping[str, Any], actual: Mapping[str, Any]
) -> list[TaskCheck]:
    """The declared check on the package's outputs against the reference's. Outputs that cannot be read
    as the declared result type fail the check (``structure``) instead of raising."""
    out = spec.output
    try:
        if spec.kind == "detection":
            return _detection_checks(spec, read_detections(reference, out), read_detections(actual, out))
        if spec.kind == "text":
            cer = character_error_rate(read_texts(reference, out), read_texts(actual, out))
            return [_check("max_cer", out, cer, spec.threshold("max_cer"), "<=")]
        if spec.kind == "classification":
            r, a = _array(reference, out, "confidence"), _array(actual, out, "confidence")
            return [
                _check("top1_agreement", out, top1_agreement(r, a), spec.threshold("min_top1")),
                _check(
                    f"top{int(spec.threshold('k'))}_agreement", out,
                    topk_agreement(r, a, int(spec.threshold("k"))), spec.threshold("min_topk"),
                ),
            ]  # fmt: skip
        if spec.kind == "embedding":
            r, a = _array(reference, out, "embeddings"), _array(actual, out, "embeddings")
            return [_check("min_row_cosine", out, min_row_cosine(r, a), spec.threshold("min_cosine"))]
        if spec.kind == "keypoints":
            return _keypoint_checks(spec, reference, actual)
    except ValueError as exc:
        return [TaskCheck(f"structure: {exc}", out, 0.0, 1.0, False)]
    raise ValueError(f"unknown task check {spec.kind!r}; accepted: {', '.join(CHECK_DEFAULTS)}")


def _detection_checks(
    spec: TaskCheckSpec, ref: list[dict[str, Any]], act: list[dict[str, Any]]
) -> list[TaskCheck]:
    if len(ref) != len(act):
        raise ValueError(f"{len(act)} images of detections, the reference has {len(ref)}")
    found = [
        detection_agreement(
            r["xyxy"], r["class_id"], a["xyxy"], a["class_id"], spec.threshold("iou"),
            r["polygons"], a["polygons"], r["confidence"], a["confidence"],
        )
        for r, a in zip(ref, act, strict=True)
    ]  # fmt: skip
    n_ref, n_act = sum(len(r["xyxy"]) for r in ref), sum(len(a["xyxy"]) for a in act)
    matched = sum(round(f.recall * len(r["xyxy"])) for f, r in zip(found, ref, strict=True))
    out, iou, t = spec.output, spec.threshold("iou"), spec.threshold
    checks = [
        _check(f"recall@iou{iou:g}", out, matched / n_ref if n_ref else 1.0, t("min_recall")),
        _check(f"precision@iou{iou:g}", out, matched / n_act if n_act else 1.0, t("min_precision")),
        _check("min_box_iou", out, min(f.min_iou for f in found), t("min_box_iou")),
        _check("class_agreement", out, min(f.class_agreement for f in found), t("min_class_agreement")),
    ]
    if all(r["polygons"] is not None for r in ref if len(r["xyxy"])):
        value = min(f.min_polygon_iou for f in found)
        checks.append(_check("min_polygon_iou", out, value, spec.threshold("min_polygon_iou")))
    if all(
        r["confidence"] is not None and a["confidence"] is not None for r, a in zip(ref, act, strict=True)
    ):
        value = max(f.max_confidence_diff for f in found)
        checks.append(_check("max_confidence_diff", out, value, spec.threshold("max_confidence_diff"), "<="))
    return checks


def _keypoint_checks(
    spec: TaskCheckSpec, reference: Mapping[str, Any], actual: Mapping[str, Any]
) -> list[TaskCheck]:
    ref, act = _items(_tree(reference, spec.output)), _items(_tree(actual, spec.output))
    if len(ref) != len(act) or not all(isinstance(x, dict) and "xy" in x for x in ref + act):
        raise ValueError(f"expected {spec.output}.<i>.xy keypoints for each of {len(ref)} images")
    found = [keypoint_agreement(r["xy"], a["xy"]) for r, a in zip(ref, act, strict=True)]
    worst = max(f[1] for f in found)
    return [
        _check("keypoint_recall", spec.output, min(f[0] for f in found), spec.threshold("min_recall")),
        _check("max_keypoint_distance", spec.output, worst, spec.threshold("max_distance"), "<="),
    ]


# ------------------------------------------------------------------------------------ by task, undeclared


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
    declared: TaskCheckSpec | None = None,
) -> list[TaskCheck]:
    """The recipe's ``declared`` check, else the task-level checks that apply to ``task`` and the outputs
    present. Shape mismatches of the undeclared checks are left to the tensor checks (which already
    fail); a check that cannot run is not reported."""
    if declared is not None:
        return run_task_check(declared, reference, actual)
    checks: list[TaskCheck] = []
    if task == "embedding" and min_cosine is not None:
        name = "sentence_embedding" if "sentence_embedding" in reference else next(iter(reference), None)
        if name and name in actual and np.shape(actual[name]) == np.shape(reference[name]):
            checks.append(
                _check("min_row_cosine", name, min_row_cosine(reference[name], actual[name]), min_cosine)
            )
    elif task in CLASSIFICATION_TASKS:
        name = _find(reference, LOGIT_NAMES) or next(iter(reference), None)
        if name and name in actual and np.shape(actual[name]) == np.shape(reference[name]):
            checks.append(
                _check("top1_agreement", name, top1_agreement(reference[name], actual[name]), TOP1_MIN)
            )
            topk = topk_agreement(reference[name], actual[name], TOPK)
            checks.append(_check(f"top{TOPK}_agreement", name, topk, TOPK_MIN))
    elif task in DETECTION_TASKS:
        bname = _find(reference, BOX_NAMES)
        if bname and bname in actual:
            cname = _find(reference, CLASS_NAMES)
            rb, ab = np.asarray(reference[bname]), np.asarray(actual[bname])
            if rb.ndim == 3:  # batched (B, N, 4): pool the images
                rb, ab = rb.reshape(-1, 4), ab.reshape(-1, 4)
            det = detection_agreement(
                rb, reference.get(cname) if cname else None, ab, actual.get(cname) if cname else None
            )
            checks += [
                _check("box_recall@iou0.5", bname, det.recall, DET_RECALL_MIN),
                _check("box_mean_iou", bname, det.mean_iou, DET_MEAN_IOU_MIN),
            ]
            if cname:
                checks.append(_check("class_agreement", cname, det.class_agreement, DET_CLASS_MIN))
    return checks
