"""The ``[parity]`` table: how close each package must be to the upstream reference, element by element
(``Tolerance``, per output, glob pattern or backend) and by task (``[parity.task]``: one check that judges the
structured result), declared like every recipe table (:mod:`packager.recipes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.errors import FieldError
from backends.schema import Rule, Table, key
from packager.recipe_checks import IMPORT_REF, backend_names

TOLERANCE = {"ge": 0.0}
"""Tolerances: finite and >= 0 (NaN would pass every comparison)."""


@dataclass(frozen=True)
class Tolerance(Table):
    """``{ atol, rtol }``: element-wise ``|actual - reference| <= atol + rtol * |reference|``."""

    atol: float = key(**TOLERANCE)
    """Absolute tolerance."""
    rtol: float = key(0.0, **TOLERANCE)
    """Relative tolerance."""


THRESHOLD = {"ge": 0.0}


def _check_kinds() -> tuple[str, ...]:
    from bench.tasks import CHECK_DEFAULTS  # numpy: loaded with a recipe's checks, not by ``pack -h``

    return tuple(CHECK_DEFAULTS)


@dataclass(frozen=True)
class TaskCheckRecipe(Table):
    """``[parity.task]``: the one check by task that judges the outputs it covers (``result.*``) instead of
    tables of output names; each threshold defaults to ``bench.tasks.CHECK_DEFAULTS`` for the check and
    applies only to the checks that have it."""

    check: str = key(choices=_check_kinds)
    """detection (matched by IoU), text (character error rate), classification (top-k), embedding
    (cosine) or keypoints (distance)."""
    output: str = key("result", pattern=r"[^.](.*[^.])?", what="an output name", accepted="e.g. 'result'")
    """The output holding the structured result: it and every ``OUTPUT.*`` name are judged by this check."""
    iou: float | None = key(None, **THRESHOLD)
    """detection: a pair of boxes matches at this IoU or more."""
    min_recall: float | None = key(None, **THRESHOLD)
    """detection, keypoints: the least fraction of reference boxes (points) matched."""
    min_precision: float | None = key(None, **THRESHOLD)
    """detection: the least fraction of the package's boxes matched."""
    min_box_iou: float | None = key(None, **THRESHOLD)
    """detection: the worst matched pair's box IoU."""
    min_polygon_iou: float | None = key(None, **THRESHOLD)
    """detection: the worst matched pair's polygon IoU (where both have polygons)."""
    min_class_agreement: float | None = key(None, **THRESHOLD)
    """detection: the least fraction of matched pairs with the same class."""
    max_confidence_diff: float | None = key(None, **THRESHOLD)
    """detection: the largest confidence difference of a matched pair."""
    max_cer: float | None = key(None, **THRESHOLD)
    """text: the largest character error rate."""
    k: float | None = key(None, ge=1.0, le=1000.0)
    """classification: top-k agreement's k."""
    min_top1: float | None = key(None, **THRESHOLD)
    """classification: the least top-1 agreement."""
    min_topk: float | None = key(None, **THRESHOLD)
    """classification: the least top-k agreement."""
    min_cosine: float | None = key(None, **THRESHOLD)
    """embedding: the least per-row cosine similarity."""
    max_distance: float | None = key(None, **THRESHOLD)
    """keypoints: the largest distance of a matched point (pixels)."""

    def thresholds(self) -> dict[str, float]:
        """The thresholds the recipe gives (the others keep their defaults)."""
        skip = {"check", "output"}
        return {
            k.attr: getattr(self, k.attr)
            for k in self.declared()
            if k.attr not in skip and getattr(self, k.attr) is not None
        }

    def validate(self, where: str = "") -> None:
        from bench.tasks import CHECK_DEFAULTS

        accepted = CHECK_DEFAULTS[self.check]
        for name in self.thresholds():
            if name not in accepted:
                raise FieldError(
                    f"{where}.{name}",
                    f"does not apply to check '{self.check}'",
                    ", ".join(["output", *accepted]),
                )

    def spec(self) -> Any:
        """The :class:`bench.tasks.TaskCheckSpec` the comparator runs."""
        from bench.tasks import TaskCheckSpec

        return TaskCheckSpec(self.check, self.output, self.thresholds())


@dataclass(frozen=True)
class ParityRecipe(Table):
    """``[parity]``: how close each package must be to the upstream reference."""

    reference_class: str | None = key(None, **IMPORT_REF, accepted="'module:Class'")
    """The reference's class; default: decided by the source (docs/your-own-model.md)."""
    tolerances: dict[str, Tolerance] = key(factory=dict, toml="outputs")
    """``[parity.outputs.NAME]``: per-output tolerance; ``*`` applies to every output."""
    backend_tolerances: dict[str, Tolerance] = key(
        factory=dict, toml="backends", keys=Rule(choices=backend_names)
    )
    """``[parity.backends.NAME]``: per-backend tolerance."""
    min_cosine: float | None = key(None, gt=0.0, le=1.0)
    """Embedding task check: the least per-row cosine similarity to the reference."""
    noise_floor: bool = False
    """Loosen each tolerance to the reference's own run-to-run noise."""
    task: TaskCheckRecipe | None = None
    """``[parity.task]``: the one check by task that judges the outputs it covers (``result.*``)."""

    @property
    def task_check(self) -> Any:
        """The declared task check as the comparator takes it (``bench.tasks.TaskCheckSpec``), or None."""
        return self.task.spec() if self.task is not None else None
