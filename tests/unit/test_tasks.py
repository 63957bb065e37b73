"""Task-level checks on known arrays: top-k agreement, box IoU, detection matching, dispatch by task."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tasks import box_iou, detection_agreement, task_checks, top1_agreement, topk_agreement


def test_top1_and_topk_agreement() -> None:
    ref = np.array([[0.1, 0.9, 0.0, 0.5], [3.0, 1.0, 2.0, 0.0]])
    same = ref + 1e-6
    assert top1_agreement(ref, same) == 1.0
    assert topk_agreement(ref, same, k=2) == 1.0
    flipped = np.array([[0.1, 0.4, 0.0, 0.5], [3.0, 1.0, 2.0, 0.0]])  # row 0 argmax 1 -> 3
    assert top1_agreement(ref, flipped) == 0.5
    assert topk_agreement(ref, flipped, k=2) == 1.0  # same top-2 set {1, 3}
    other = np.array([[0.9, 0.1, 0.8, 0.0], [3.0, 1.0, 2.0, 0.0]])  # row 0 top-2 {0, 2} vs {1, 3}
    assert topk_agreement(ref, other, k=2) == pytest.approx(0.5)
    assert topk_agreement(ref, other, k=99) == 1.0  # k capped at the class count
    with pytest.raises(ValueError, match=r"logit shapes differ: \(1, 4\) vs reference \(2, 4\)"):
        topk_agreement(ref, ref[:1])


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]], dtype=float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == 0.0
    assert iou[1, 1] == pytest.approx(4 / 100)
    assert box_iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))[0, 0] == 0.0  # empty boxes


def test_detection_agreement_matching_and_class_flip() -> None:
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], dtype=float)
    # package: same boxes shuffled and jittered by 0.5 px, one class flipped, one missing, one extra
    act = np.array([[20.5, 20, 30.5, 30], [0, 0, 10, 10.5], [100, 100, 110, 110]], dtype=float)
    agreement = detection_agreement(ref, np.array([1, 2, 3]), act, np.array([2, 7, 5]))
    assert agreement.recall == pytest.approx(2 / 3)
    assert agreement.mean_iou == pytest.approx((95 / 105 + 100 / 105) / 2)
    assert agreement.class_agreement == pytest.approx(0.5)  # box 0 matched with class 7 != 1
    assert agreement.extra == 1
    assert detection_agreement(ref[:0], None, act, None).recall == 1.0


def test_task_checks_dispatch() -> None:
    ref = {"logits": np.array([[0.1, 0.9], [0.8, 0.2]])}
    checks = {c.check: c for c in task_checks("classification", ref, {"logits": ref["logits"][:, ::-1]})}
    assert not checks["top1_agreement"].passed and checks["top1_agreement"].value == 0.0
    det_ref = {"boxes": np.array([[0, 0, 10, 10]], float), "labels": np.array([3])}
    det = {c.check: c for c in task_checks("object-detection", det_ref, {**det_ref, "labels": np.array([4])})}
    assert det["box_recall@iou0.5"].passed and det["box_mean_iou"].value == 1.0
    assert not det["class_agreement"].passed
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    e = task_checks("embedding", {"sentence_embedding": emb}, {"sentence_embedding": emb}, 0.9985)
    assert e[0].check == "min_row_cosine" and e[0].passed
    assert task_checks("embedding", {"x": emb}, {"x": emb}, None) == []
