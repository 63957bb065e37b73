"""Results checked by task (issue 20): the declared task checks on the consumer's result types, read back from
their flattened names, without the consumer. Detections by IoU (boxes, polygons, class, confidence), text
by character error rate, classification by top-k, embeddings by cosine, keypoints by distance."""

from __future__ import annotations

import numpy as np
import pytest

from bench.task_metrics import character_error_rate, edit_distance, keypoint_agreement, polygon_iou
from bench.tasks import TaskCheckSpec, covers, read_detections, read_texts, run_task_check, task_checks


def flat_detections(images: list[list[tuple[list[list[int]], float]]]) -> dict[str, np.ndarray]:
    """What :class:`ConsumerModel` makes of a list of the consumer's ``Detections`` with polygons: names
    ``result.<i>.xyxy`` ..., ``result.<i>.bboxes_metadata.<j>.polygon.<k>`` (int64 points)."""
    out: dict[str, np.ndarray] = {}
    for i, quads in enumerate(images):
        xyxy = [[min(p[0] for p in q), min(p[1] for p in q), max(p[0] for p in q), max(p[1] for p in q)]
                for q, _ in quads]  # fmt: skip
        out[f"result.{i}.xyxy"] = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
        out[f"result.{i}.class_id"] = np.zeros(len(quads), dtype=np.int64)
        out[f"result.{i}.confidence"] = np.array([s for _, s in quads], dtype=np.float32)
        for j, (quad, _) in enumerate(quads):
            for k, point in enumerate(quad):
                out[f"result.{i}.bboxes_metadata.{j}.polygon.{k}"] = np.array(point, dtype=np.int64)
    return out


WORD = [[10, 20], [110, 20], [110, 50], [10, 50]]
OTHER = [[10, 80], [90, 80], [90, 110], [10, 110]]


def shifted(quad: list[list[int]], dx: int, dy: int = 0) -> list[list[int]]:
    return [[x + dx, y + dy] for x, y in quad]


def test_polygon_iou_known_values() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]])
    assert polygon_iou(square, square) == pytest.approx(1.0)
    assert polygon_iou(square, square + np.array([5, 0])) == pytest.approx(50 / 150)
    assert polygon_iou(square, square[::-1]) == pytest.approx(1.0)  # orientation does not matter
    assert polygon_iou(square, square + np.array([20, 0])) == 0.0
    diamond = np.array([[5, 0], [10, 5], [5, 10], [0, 5]])  # area 50, inside the square
    assert polygon_iou(square, diamond) == pytest.approx(0.5)


def test_edit_distance_and_character_error_rate() -> None:
    assert edit_distance("weightpack", "weightpack") == 0
    assert edit_distance("weightpack", "weigthpack") == 2
    assert edit_distance("", "abc") == 3
    assert character_error_rate(["abcd", "ef"], ["abcd", "ef"]) == 0.0
    assert character_error_rate(["abcd", "ef"], ["abed", "ef"]) == pytest.approx(1 / 6)
    assert character_error_rate(["abcd", "ef"], ["abcd"]) == pytest.approx(2 / 6)  # a missing line counts


def test_read_detections_from_the_flattened_names() -> None:
    outputs = flat_detections([[(WORD, 0.9), (OTHER, 0.8)], []])
    first, empty = read_detections(outputs)
    np.testing.assert_array_equal(first["xyxy"], [[10, 20, 110, 50], [10, 80, 90, 110]])
    assert [p.tolist() for p in first["polygons"]] == [WORD, OTHER]
    assert len(empty["xyxy"]) == 0
    assert covers(TaskCheckSpec("detection"), "result.0.bboxes_metadata.1.polygon.3")
    assert not covers(TaskCheckSpec("detection"), "raw.0") and not covers(
        TaskCheckSpec("detection"), "results"
    )


def test_detection_check_accepts_one_pixel_rounding_and_a_changed_box_count_is_not_a_name_problem() -> None:
    spec = TaskCheckSpec("detection")
    reference = flat_detections([[(WORD, 0.9), (OTHER, 0.8)]])
    rounded = flat_detections([[(OTHER, 0.81), (shifted(WORD, 1, 1), 0.9)]])  # reordered, 1 px off
    checks = run_task_check(spec, reference, rounded)
    assert all(c.passed for c in checks), checks
    assert {c.check for c in checks} == {
        "recall@iou0.5", "precision@iou0.5", "min_box_iou", "class_agreement", "min_polygon_iou",
        "max_confidence_diff",
    }  # fmt: skip
    missing = flat_detections([[(WORD, 0.9)]])
    by_name = {c.check: c for c in run_task_check(spec, reference, missing)}
    assert not by_name["recall@iou0.5"].passed and by_name["recall@iou0.5"].value == 0.5
    assert by_name["precision@iou0.5"].passed
    far = flat_detections([[(shifted(WORD, 30), 0.9), (OTHER, 0.8)]])  # IoU 70/130: matched, too loose
    by_name = {c.check: c for c in run_task_check(spec, reference, far)}
    assert by_name["recall@iou0.5"].passed and not by_name["min_box_iou"].passed
    unsure = flat_detections([[(WORD, 0.5), (OTHER, 0.8)]])
    by_name = {c.check: c for c in run_task_check(spec, reference, unsure)}
    assert not by_name["max_confidence_diff"].passed and by_name["max_confidence_diff"].rule == "<="
    loose = TaskCheckSpec("detection", thresholds={"max_confidence_diff": 0.5})
    assert all(c.passed for c in run_task_check(loose, reference, unsure))


def test_detection_check_fails_on_a_result_that_is_not_detections() -> None:
    [check] = run_task_check(
        TaskCheckSpec("detection"), flat_detections([[(WORD, 0.9)]]), {"result": np.ones(3)}
    )
    assert not check.passed and check.check.startswith("structure: result: no detections")


def test_text_check_by_string_equality_or_character_error_rate() -> None:
    from packager.consumer.model import encode_texts

    reference = {"result": encode_texts(["weightpack", "inference"]), "raw": np.zeros(2)}
    assert read_texts(reference) == ["weightpack", "inference"]
    [same] = run_task_check(
        TaskCheckSpec("text"), reference, {"result": encode_texts(["weightpack", "inference"])}
    )
    assert same.passed and same.value == 0.0
    typo = {"result": encode_texts(["weightpack", "inferense"])}
    [strict] = run_task_check(TaskCheckSpec("text"), reference, typo)
    assert not strict.passed and strict.value == pytest.approx(1 / 19) and strict.rule == "<="
    [lenient] = run_task_check(TaskCheckSpec("text", thresholds={"max_cer": 0.1}), reference, typo)
    assert lenient.passed


def test_classification_embedding_and_keypoint_checks() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    spec = TaskCheckSpec("classification", thresholds={"k": 2})
    ok = run_task_check(spec, {"result.confidence": scores}, {"result.confidence": scores + 0.01})
    assert [c.check for c in ok] == ["top1_agreement", "top2_agreement"] and all(c.passed for c in ok)
    flipped = run_task_check(spec, {"result.confidence": scores}, {"result.confidence": scores[:, [1, 0, 2]]})
    assert not flipped[0].passed
    emb = np.array([[1.0, 0.0], [0.0, 2.0]])
    [cos] = run_task_check(TaskCheckSpec("embedding"), {"result": emb}, {"result": emb * 3})
    assert cos.passed and cos.value == pytest.approx(1.0)
    [bad] = run_task_check(TaskCheckSpec("embedding"), {"result": emb}, {"result": emb[::-1]})
    assert not bad.passed
    xy = np.array([[[10.0, 10.0], [20.0, 20.0]], [[50.0, 50.0], [60.0, 60.0]]])
    assert keypoint_agreement(xy, xy[::-1] + 1.0) == (1.0, pytest.approx(np.sqrt(2)))
    checks = run_task_check(TaskCheckSpec("keypoints"), {"result.0.xy": xy}, {"result.0.xy": xy + 3.0})
    assert checks[0].passed and not checks[1].passed and checks[1].value == pytest.approx(np.hypot(3, 3))


def test_declared_check_replaces_the_checks_by_name() -> None:
    reference = flat_detections([[(WORD, 0.9)]])
    checks = task_checks("object-detection", reference, reference, declared=TaskCheckSpec("detection"))
    assert "min_polygon_iou" in {c.check for c in checks}
    with pytest.raises(ValueError, match="unknown task check 'boxes'; accepted: detection, text"):
        run_task_check(TaskCheckSpec("boxes"), reference, reference)
