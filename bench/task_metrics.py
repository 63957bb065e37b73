"""The task comparators' arithmetic: top-k agreement, cosine, box and polygon IoU, one-to-one matching,
edit distance, keypoint distance. Pure numpy (no weightpack import), so generated fixtures can copy it
verbatim beside :mod:`bench.tasks`, which holds the checks built on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DET_IOU_MATCH = 0.5
TOPK = 5


def topk_agreement(reference: np.ndarray, actual: np.ndarray, k: int = TOPK) -> float:
    """Mean over rows of ``|topk(ref) ∩ topk(actual)| / k`` (k capped at the class count).
    Logits are ``(..., classes)``; leading dims are rows."""
    r, a = _rows(reference, actual)
    k = max(1, min(int(k), r.shape[1]))
    top_r = np.argsort(-r, axis=1, kind="stable")[:, :k]
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    overlap = [len(set(x) & set(y)) / k for x, y in zip(top_r.tolist(), top_a.tolist(), strict=True)]
    return float(np.mean(overlap))


def top1_agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Fraction of rows whose argmax class is the same."""
    r, a = _rows(reference, actual)
    return float(np.mean(np.argmax(r, axis=1) == np.argmax(a, axis=1)))


def _rows(reference: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(reference, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if r.shape != a.shape or r.ndim == 0:
        raise ValueError(f"logit shapes differ: {a.shape} vs reference {r.shape}")
    return r.reshape(-1, r.shape[-1]), a.reshape(-1, a.shape[-1])


def min_row_cosine(reference: np.ndarray, actual: np.ndarray) -> float:
    """The smallest per-row cosine similarity of two embedding batches (rows: the first axis)."""
    r = np.asarray(reference, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if r.shape != a.shape or r.ndim == 0:
        raise ValueError(f"embedding shapes differ: {a.shape} vs reference {r.shape}")
    r, a = r.reshape(r.shape[0], -1), a.reshape(a.shape[0], -1)
    num = np.sum(r * a, axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(a, axis=1)
    return float(np.min(np.divide(num, den, out=np.zeros_like(num), where=den > 0)))


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


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon ``(K, 2)`` (shoelace formula)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _ccw(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    signed = np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))
    return p if signed >= 0 else p[::-1]


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two convex polygons ``(K, 2)`` (text quadrilaterals, boxes): Sutherland-Hodgman clipping."""
    subject, clip = _ccw(a), _ccw(b)
    out = list(subject)
    for i in range(len(clip)):
        if not out:
            break
        p, q = clip[i], clip[(i + 1) % len(clip)]
        edge = q - p

        def inside(v: np.ndarray, p: np.ndarray = p, edge: np.ndarray = edge) -> bool:
            return edge[0] * (v[1] - p[1]) - edge[1] * (v[0] - p[0]) >= 0

        polygon, out = out, []
        for j, e in enumerate(polygon):
            s = polygon[j - 1]
            if inside(e):
                if not inside(s):
                    out.append(_intersect(s, e, p, q))
                out.append(e)
            elif inside(s):
                out.append(_intersect(s, e, p, q))
    inter = polygon_area(np.array(out)) if len(out) >= 3 else 0.0
    union = polygon_area(subject) + polygon_area(clip) - inter
    return float(inter / union) if union > 0 else 0.0


def _intersect(s: np.ndarray, e: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Where segment ``s``-``e`` crosses the line through ``p``-``q``."""
    d1, d2 = e - s, q - p
    den = d1[0] * d2[1] - d1[1] * d2[0]
    if den == 0:
        return s
    t = ((p[0] - s[0]) * d2[1] - (p[1] - s[1]) * d2[0]) / den
    return s + t * d1


def match_pairs(similarity: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, most similar first, of pairs at ``minimum`` or more."""
    m = similarity.shape[1]
    pairs: list[tuple[int, int]] = []
    used_r: set[int] = set()
    used_a: set[int] = set()
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        i, j = divmod(int(flat), m)
        if similarity[i, j] < minimum:
            break
        if i not in used_r and j not in used_a:
            used_r.add(i)
            used_a.add(j)
            pairs.append((i, j))
    return pairs


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
    precision: float = 1.0
    min_iou: float = 1.0
    min_polygon_iou: float = 1.0
    max_confidence_diff: float = 0.0


def detection_agreement(
    ref_boxes: np.ndarray,
    ref_classes: np.ndarray | None,
    boxes: np.ndarray,
    classes: np.ndarray | None,
    iou_threshold: float = DET_IOU_MATCH,
    ref_polygons: list[np.ndarray] | None = None,
    polygons: list[np.ndarray] | None = None,
    ref_confidence: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> DetectionAgreement:
    """Greedy one-to-one matching by descending box IoU (class-agnostic, so a class flip is seen as one);
    polygons and confidences, where both sides have them, are compared on the matched pairs."""
    iou = box_iou(ref_boxes, boxes)
    n, m = iou.shape
    if n == 0:
        return DetectionAgreement(1.0, 1.0, 1.0, m, precision=1.0 if m == 0 else 0.0)
    pairs = match_pairs(iou, iou_threshold)
    if not pairs:
        return DetectionAgreement(0.0, 0.0, 0.0, m, precision=0.0, min_iou=0.0, min_polygon_iou=0.0)
    ious = [iou[i, j] for i, j in pairs]
    agree = 1.0
    if ref_classes is not None and classes is not None:
        rc, ac = np.asarray(ref_classes).reshape(-1), np.asarray(classes).reshape(-1)
        agree = float(np.mean([rc[i] == ac[j] for i, j in pairs]))
    poly = 1.0
    if ref_polygons is not None and polygons is not None:
        poly = min(polygon_iou(ref_polygons[i], polygons[j]) for i, j in pairs)
    conf = 0.0
    if ref_confidence is not None and confidence is not None:
        rf, af = np.asarray(ref_confidence).reshape(-1), np.asarray(confidence).reshape(-1)
        conf = max(abs(float(rf[i]) - float(af[j])) for i, j in pairs)
    return DetectionAgreement(
        len(pairs) / n, float(np.mean(ious)), agree, m - len(pairs),
        precision=len(pairs) / m, min_iou=float(min(ious)), min_polygon_iou=poly, max_confidence_diff=conf,
    )  # fmt: skip


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def character_error_rate(reference: list[str], actual: list[str]) -> float:
    """Summed edit distance over summed reference length (a missing or extra line counts whole)."""
    pairs = list(zip(reference, actual, strict=False))
    errors = sum(edit_distance(r, a) for r, a in pairs)
    errors += sum(len(t) for t in reference[len(pairs) :]) + sum(len(t) for t in actual[len(pairs) :])
    return errors / max(1, sum(len(t) for t in reference))


def keypoint_agreement(ref_xy: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """``(recall, max distance)``: instances ``(I, K, 2)`` matched by mean keypoint distance (greedy,
    closest first), then the largest distance between matched keypoints (0 when nothing matched)."""
    r = np.asarray(ref_xy, dtype=np.float64).reshape(-1, *np.shape(ref_xy)[-2:])
    a = np.asarray(xy, dtype=np.float64).reshape(-1, *np.shape(xy)[-2:])
    if len(r) == 0:
        return 1.0, 0.0
    if len(a) == 0 or r.shape[1:] != a.shape[1:]:
        return 0.0, float("inf")
    dist = np.linalg.norm(r[:, None] - a[None, :], axis=-1).mean(axis=-1)
    pairs = match_pairs(-dist, -np.inf)
    worst = max(float(np.max(np.linalg.norm(r[i] - a[j], axis=-1))) for i, j in pairs)
    return len(pairs) / len(r), worst
