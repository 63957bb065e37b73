"""``pack --profile``: where a pack spends its wall time, stage by stage.

The pipeline already announces every stage through :meth:`UI.stage`; :class:`ProfilingUI` wraps the UI in
use and times those stages, so profiling adds no calls to the pipeline. Start-up (interpreter, imports and
argument handling before the first stage) is taken from the process's start time, and whatever falls
outside every stage (writing the report, the plot, the summary) is shown as its own line, so the lines add
up to the whole run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from packager.ui import UI


def process_age_s() -> float:
    """Seconds since this process started (what start-up cost before the first line of ours ran)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


@dataclass
class StageTime:
    label: str
    seconds: float


@dataclass
class Profile:
    """Timed stages in the order they ended, plus start-up; ``finish`` closes the run's clock."""

    startup_s: float = 0.0
    stages: list[StageTime] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)
    total_s: float | None = None

    def finish(self) -> None:
        self.total_s = self.startup_s + (time.perf_counter() - self._started)

    def rows(self) -> list[tuple[str, float]]:
        """``(label, seconds)`` for start-up, each top-level stage and the rest, adding up to the total."""
        if self.total_s is None:
            self.finish()
        total = self.total_s or 0.0
        rows = [("start-up (interpreter, imports, recipe, devices)", self.startup_s)]
        rows += [(s.label, s.seconds) for s in self.stages]
        rows.append(("outside stages (report, plot, summary)", max(0.0, total - sum(s for _, s in rows))))
        return rows

    def by_kind(self) -> dict[str, float]:
        """Seconds per kind of stage (its first word: fetch, reference, export, zip, load, latency...)."""
        kinds: dict[str, float] = {}
        for stage in self.stages:
            kind = stage.label.split(" ", 1)[0]
            kinds[kind] = kinds.get(kind, 0.0) + stage.seconds
        return kinds

    def render(self) -> str:
        rows = self.rows()
        total = sum(s for _, s in rows) or 1e-9
        width = max(len(label) for label, _ in rows)
        lines = [f"profile: {total:.2f} s wall"]
        lines += [f"  {label:<{width}}  {s:8.2f} s  {100 * s / total:5.1f}%" for label, s in rows]
        lines.append("  by kind: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.by_kind().items()))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"total_s": self.total_s, "rows": [{"stage": label, "seconds": s} for label, s in self.rows()]}


class ProfilingUI(UI):
    """Times the stages of the UI it wraps (nested stages count towards their outermost one only)."""

    def __init__(self, inner: UI, profile: Profile) -> None:
        self.inner = inner
        self.profile = profile
        self._depth = 0

    @contextlib.contextmanager
    def stage(self, description: str) -> Iterator[None]:
        start = time.perf_counter()
        self._depth += 1
        try:
            with self.inner.stage(description):
                yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.profile.stages.append(StageTime(description, time.perf_counter() - start))

    def info(self, message: str) -> None:
        self.inner.info(message)

    def warn(self, message: str) -> None:
        self.inner.warn(message)

    def download_progress(self, description: str, done: int, total: int | None) -> None:
        self.inner.download_progress(description, done, total)
