"""The report as a person sees it: opened from disk in Debian's headless Chromium, through Playwright.

The report of a realistic run (conftest.py `study_rows`: training in two frameworks, attacks, moves
between frameworks with a failed conversion, mobile and web deployments) loads with no console or page
error, asks the network for nothing but the file itself (plotly.js is unpacked from the page), and draws
every chart of every section with plotted marks: those in view at once, the folded ones when their fold
opens. A screenshot of each section is saved under $DLCOMPAT_TEST_ARTIFACTS (default: pytest's temporary
folder), and the folder is printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlcompat.report.build import write_report
from dlcompat.report.document import build_document
from dlcompat.report.sections import SECTION_IDS

from .helpers import ALL_VISIBLE_CHARTS_DRAWN, CHROMIUM_ARGS, OPEN_EVERY_FOLD

pytest.importorskip("playwright.sync_api")

#: the sections whose every chart must draw (findings and environment are tables only)
CHARTED = ("training", "robustness", "migration", "deployment")

#: per chart: is it a plotly plot with an SVG, and how many marks did it draw (bars, points, lines, heatmap images)
CHART_MARKS = """
(section) => Array.from(document.querySelectorAll(`section#${section} [data-figure]`)).map((chart) => ({
  id: chart.id,
  plotted: chart.classList.contains("js-plotly-plot"),
  svgs: chart.querySelectorAll("svg.main-svg").length,
  marks: Array.from(chart.querySelectorAll(
      "g.trace path.point, g.trace g.point path, g.trace path.js-line, g.hm image"))
    .filter((mark) => mark.tagName === "image" ? mark.getAttribute("href") || mark.getAttribute("xlink:href")
                                              : (mark.getAttribute("d") || "").length > 2).length,
}))
"""


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("DLCOMPAT_TEST_ARTIFACTS")
    folder = (Path(configured) / "report-browser") if configured else tmp_path_factory.mktemp("report-browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_report_renders_in_chromium_with_no_error_and_no_network(
        tmp_path: Path, screenshots: Path, chromium: str, study_run: dict, study_rows: list[dict]) -> None:
    from playwright.sync_api import sync_playwright

    document = build_document(study_run, study_rows)
    charted = {s.id: len(s.charts) for s in document.sections}
    assert all(charted[section] > 0 for section in CHARTED), charted  # the run has something to draw in each
    html_path, _ = write_report(study_run, study_rows, tmp_path / "report")
    url = html_path.as_uri()

    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})  # a laptop's screen
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error"
                    else None)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url, wait_until="load")
            page.wait_for_function(ALL_VISIBLE_CHARTS_DRAWN, timeout=30_000)
            page.evaluate(OPEN_EVERY_FOLD)  # a folded chart is drawn when its fold opens
            page.wait_for_function(ALL_VISIBLE_CHARTS_DRAWN, timeout=30_000)
            marks = {section: page.evaluate(CHART_MARKS, section) for section in SECTION_IDS}
            saved = []
            for section in [s.id for s in document.sections]:
                path = screenshots / f"{SECTION_IDS.index(section) if section in SECTION_IDS else 9}-{section}.png"
                page.locator(f"section#{section}").screenshot(path=str(path))
                saved.append(path)
            page.emulate_media(media="print")
            printed = page.pdf() if hasattr(page, "pdf") else b""
        finally:
            browser.close()
    print(f"\nreport screenshots: {screenshots}")

    assert console_errors == [] and page_errors == []
    assert requests == [url]  # nothing but the file itself
    for section in CHARTED:
        assert len(marks[section]) == charted[section]
        for chart in marks[section]:
            assert chart["plotted"] and chart["svgs"] > 0 and chart["marks"] > 0, (section, chart)
    assert all(path.stat().st_size > 5_000 for path in saved)
    assert printed.startswith(b"%PDF")  # it prints
