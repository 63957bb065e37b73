"""pack history: one static page per family, opened from disk in a real headless browser (Debian's Chromium
driven by playwright; scripts/setup.sh installs both): the charts drew, no script error, nothing fetched,
and the night with a planted regression is marked on its row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.cli import main
from tests.nightsim import MATRIX, Row, night, write_night

QUIET = tuple(Row(r.backend, r.batch_size, r.ms, 0.02, 0.01) for r in MATRIX)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _nights(root: Path, count: int = 8, planted: int = 6) -> list[Path]:
    """``count`` nights of the demo family's matrix; night ``planted`` has onnx batch 8 at 1.5x."""
    rng = np.random.default_rng(11)
    paths = []
    for i in range(count):
        slow = {("onnx", 8): 1.5} if i == planted else None
        paths.append(write_night(root / f"2026-12-{i + 1:02d}", night(rng, QUIET, slow=slow, name=f"n{i}")))
    return paths


def test_history_marks_the_regression_and_uses_the_nightly_s_own_verdicts(tmp_path: Path) -> None:
    nights = _nights(tmp_path / "nights")
    # the last night in the nightly's layout: its recorded comparison and its pack report are used
    last = tmp_path / "nights" / "2026-12-08"
    (last / "runs" / "demo").mkdir(parents=True)
    for f in last.glob("run-*.json"):
        f.rename(last / "runs" / "demo" / f.name)
    (last / "demo").mkdir()
    (last / "demo" / "report.md").write_text("# report\n")
    (last / "demo.compare.json").write_text(json.dumps({"regressed": False, "latency": [], "parity": []}))
    out = tmp_path / "site"
    assert main(["history", *map(str, nights), "--out", str(out)]) == 0
    page = (out / "demo.html").read_text()
    assert "class='pt v-regression' data-night='6' data-row='v/onnx/cpu/bs8'" in page
    assert page.count("class='pt v-regression'") == 1  # the planted row only
    assert "href='../nights/2026-12-08/demo/report.md'" in page and ">nightly<" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert "demo.html" in (out / "index.html").read_text()


def test_history_page_in_a_real_browser(tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it as root with apt)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright missing: pip install -e '.[dev]'"
    )
    nights = _nights(tmp_path / "nights")
    out = tmp_path / "site"
    assert main(["history", *map(str, nights), "--out", str(out)]) == 0
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "demo.html").as_uri())
            page.wait_for_selector("body[data-ready='1']")
            charts = page.locator("svg.chart.latency")
            assert charts.count() == 8
            for i in range(8):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 300 and box["height"] > 150
                assert charts.nth(i).locator("circle.pt").count() == 8  # one point per night
                assert charts.nth(i).locator("path.level").get_attribute("d").count("L") == 7
            assert page.locator("svg.chart.parity").count() == 4
            flagged = page.locator("circle.v-regression")
            assert flagged.count() == 1
            assert (
                flagged.get_attribute("data-row") == "v/onnx/cpu/bs8"
                and flagged.get_attribute("data-night") == "6"
            )
            assert page.locator("svg[data-row='v/onnx/cpu/bs8'] text.flag").text_content() == "▲ regression"
            table = page.locator("tr.night[data-night='6']").inner_text()
            assert "REGRESSION" in table and "regression 1" in table
            flagged.hover()
            tip = page.locator("#tip")
            assert tip.is_visible() and "regression" in tip.inner_text() and "median" in tip.inner_text()
            page.fill("#filter", "onnx/cpu/bs8")
            assert page.locator(".row-card:visible").count() == 1
            page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
        finally:
            context.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert (tmp_path / "history.png").stat().st_size > 10_000
