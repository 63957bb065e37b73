"""pack --profile: stages are timed through the UI they pass through, and the lines add up to the run."""

from __future__ import annotations

import time

import pytest

from packager.profiling import Profile, ProfilingUI
from packager.ui import UI


class Recording(UI):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def info(self, message: str) -> None:
        self.seen.append(message)


def test_stages_are_timed_and_lines_add_up_to_the_total() -> None:
    inner = Recording()
    profile = Profile(startup_s=0.5)
    ui = ProfilingUI(inner, profile)
    with ui.stage("export l6 -> onnx"):
        time.sleep(0.05)
        with ui.stage("export nested step"):  # counted in its outer stage only
            time.sleep(0.02)
        ui.info("hello")
    with ui.stage("zip a.zip"):
        time.sleep(0.01)
    time.sleep(0.03)  # outside every stage
    profile.finish()
    rows = dict(profile.rows())
    assert list(rows) == [
        "start-up (interpreter, imports, recipe, devices)",
        "export l6 -> onnx",
        "zip a.zip",
        "outside stages (report, plot, summary)",
    ]
    assert rows["export l6 -> onnx"] >= 0.07 and rows["zip a.zip"] >= 0.01
    assert rows["outside stages (report, plot, summary)"] >= 0.03
    assert sum(rows.values()) == pytest.approx(profile.total_s)
    assert inner.seen == ["hello"], "the wrapped UI still gets every message"
    assert set(profile.by_kind()) == {"export", "zip"}
    assert "export l6 -> onnx" in profile.render() and "%" in profile.render()


def test_a_failing_stage_is_still_timed() -> None:
    profile = Profile()
    ui = ProfilingUI(UI(), profile)
    with pytest.raises(RuntimeError, match="boom"), ui.stage("load x"):
        raise RuntimeError("boom")
    assert [s.label for s in profile.stages] == ["load x"]
