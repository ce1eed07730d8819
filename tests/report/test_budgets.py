"""A report read in five minutes: the quick study's report is small, short and as wide as the page.

Built from a run the size of the `quick` study (quick_study.py: 5 frameworks, every route, runtime and
attack), it is at most 2 MB as one self-contained file; in Debian's headless Chromium at 1400 px wide it is
at most 25 screens of 900 px tall with its folds closed (as it opens); and at 1280 px wide, with every fold
open, no table reaches beyond the page's right edge (`document.documentElement.clientWidth`). The conftest
study's report must fit the page too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlcompat.report.build import write_report

from .helpers import (
    ALL_VISIBLE_CHARTS_DRAWN,
    CHROMIUM_ARGS,
    OPEN_EVERY_FOLD,
    PAGE_HEIGHT,
    TABLES_WIDER_THAN_THE_PAGE,
    parse_page,
)
from .quick_study import build_quick_study_rows, build_quick_study_run

MAX_BYTES = 2_000_000
SCREEN_HEIGHT = 900
MAX_SCREENS = 25


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    html_path, _ = write_report(build_quick_study_run(), build_quick_study_rows(),
                                tmp_path_factory.mktemp("quick-report"))
    return html_path


def test_the_quick_study_report_is_at_most_2_mb(quick_report: Path) -> None:
    assert quick_report.stat().st_size <= MAX_BYTES


def test_every_fold_is_closed_and_each_section_leads_with_one_chart_or_table(quick_report: Path) -> None:
    page = quick_report.read_text(encoding="utf-8")
    elements = parse_page(page).elements
    assert not any(tag == "details" and "open" in attrs for tag, attrs in elements)
    for section in page.split('<section id="')[1:]:
        lead = section.split("<details", 1)[0]  # what a reader sees before the first fold
        assert lead.count('<p class="answer') == 1
        assert lead.count("<figure") + lead.count("<table") == 1, section[:40]


def _open(browser: Any, path: Path, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": SCREEN_HEIGHT})
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(ALL_VISIBLE_CHARTS_DRAWN, timeout=30_000)
    return page


def test_in_chromium_the_report_is_short_and_no_table_is_wider_than_the_page(
        tmp_path: Path, chromium: str, quick_report: Path, study_run: dict, study_rows: list[dict]) -> None:
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    study_report, _ = write_report(study_run, study_rows, tmp_path / "study")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            height = _open(browser, quick_report, 1400).evaluate(PAGE_HEIGHT)
            wider = {}
            for report in (quick_report, study_report):
                page = _open(browser, report, 1280)
                page.evaluate(OPEN_EVERY_FOLD)
                page.wait_for_function(ALL_VISIBLE_CHARTS_DRAWN, timeout=30_000)
                wider[report.parent.name] = page.evaluate(TABLES_WIDER_THAN_THE_PAGE)
        finally:
            browser.close()
    assert height <= MAX_SCREENS * SCREEN_HEIGHT, f"{height} px is {height / SCREEN_HEIGHT:.1f} screens"
    assert all(tables == [] for tables in wider.values()), wider
