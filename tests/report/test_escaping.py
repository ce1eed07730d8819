"""User-supplied strings render as text everywhere: HTML, Markdown, chart labels, heatmap labels and hover text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from dlcompat.report.html import render_html
from dlcompat.report.markdown import render_markdown

from .conftest import DYNAMO
from .helpers import figures, parse_page, scripts_are_ours_or_inert

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def evil_rows(study_rows: list[dict]) -> list[dict]:
    """A model named `<script>…`, a converter variant and an error text that carry it too."""
    evil_variant = f"torch.onnx ({EVIL})"
    for row in study_rows:
        if row["model"] == "lenet5":
            row["model"] = EVIL
        row["variant"] = row["variant"].replace(DYNAMO, evil_variant)
        if row["error"]:
            row["error"] = f"{row['error']} {EVIL}"
    return study_rows


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a figure spec."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_html_escapes_every_user_string(study_run: dict, evil_rows: list[dict]) -> None:
    study_run["name"] = EVIL
    page = render_html(study_run, evil_rows)
    assert EVIL not in page and ESCAPED in page
    # The only scripts: our own, and inert data (JSON figures, plotly.js packed).
    assert scripts_are_ours_or_inert(page)
    parsed = parse_page(page)
    specs = figures(page)
    assert not any("<script" in text for spec in specs.values() for text in strings(spec))
    # heatmap labels and hover text carry the escaped name (plotly.js decodes entities, showing it as text)
    assert "figure-migration-converters-digits-script-alert-1-script" in specs  # ids are slugs
    heatmap = specs["figure-migration-converters-digits-script-alert-1-script"]["data"][0]
    assert f"PyTorch · torch.onnx ({ESCAPED})" in heatmap["y"]
    assert any(ESCAPED in text for line in heatmap["hovertext"] for text in line)
    scatter_hover = [text for spec in specs.values() for trace in spec["data"] for text in trace.get("hovertext", [])
                     if isinstance(text, str)]
    assert any(ESCAPED in text for text in scatter_hover)
    captions = [attrs.get("aria-label", "") for tag, attrs in parsed.elements if tag == "div"]
    assert any(EVIL in caption for caption in captions)  # an attribute, decoded by the parser: text, not markup


def test_markdown_escapes_every_user_string(study_run: dict, evil_rows: list[dict]) -> None:
    study_run["name"] = EVIL
    text = render_markdown(study_run, evil_rows)
    # full error texts sit verbatim in fenced code blocks, where Markdown shows everything as text
    prose = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", text, flags=re.M | re.S)
    assert "```" not in prose and EVIL in text
    assert EVIL not in prose
    assert ESCAPED in prose
    assert f"# dlcompat report: {ESCAPED}" in text
