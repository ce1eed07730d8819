"""Reading a rendered report back: attributes, scripts and figures of the HTML; tables of the Markdown."""

from __future__ import annotations

import base64
import gzip
import json
import re
from html.parser import HTMLParser
from typing import Any


class PageParser(HTMLParser):
    """Collects every element's attributes and the text of each <script>, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag == "script":
            self._script, self._text = attributes, []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None


def parse_page(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def figures(page: str) -> dict[str, dict[str, Any]]:
    """The JSON figure of every chart, by the id of its <script type="application/json">."""
    parsed = parse_page(page)
    return {attrs["id"]: json.loads(text) for attrs, text in parsed.scripts
            if attrs.get("type") == "application/json"}


#: the types of the <script> elements a browser does not run: figure data, and plotly.js packed (report.js unpacks it)
INERT_SCRIPT_TYPES = ("application/json", "application/gzip+base64")


def scripts_are_ours_or_inert(page: str) -> bool:
    """Every <script> is either our own (no attributes: report.js) or inert data; there is exactly one of ours."""
    scripts = parse_page(page).scripts
    return (all(attrs == {} or attrs.get("type") in INERT_SCRIPT_TYPES for attrs, _ in scripts)
            and sum(1 for attrs, _ in scripts if not attrs) == 1)


def plotly_in(page: str) -> str | None:
    """The plotly.js a page carries, unpacked (None when it carries none)."""
    packed = [text for attrs, text in parse_page(page).scripts if attrs.get("id") == "plotly-js"]
    return gzip.decompress(base64.b64decode(packed[0])).decode("utf-8") if packed else None


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table of a Markdown text, as rows of cells (the separator row dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in _UNESCAPED_PIPE.split(line)[1:-1]]
            if not all(re.fullmatch(r"-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


# -- in Chromium (Debian's, through Playwright) -------------------------------------------------------------

#: headless, no sandbox (containers), no GPU process, nothing talking to the network on its own
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: every chart outside a closed <details> has been drawn (plotly.js unpacks asynchronously, folded charts wait)
ALL_VISIBLE_CHARTS_DRAWN = """() => Array.from(document.querySelectorAll("[data-figure]"))
  .filter((chart) => !chart.closest("details:not([open])"))
  .every((chart) => chart.classList.contains("js-plotly-plot"))"""
OPEN_EVERY_FOLD = """() => document.querySelectorAll("details").forEach((fold) => { fold.open = true; })"""
#: the tables whose right edge is beyond the page's (the viewport less its scroll bar)
TABLES_WIDER_THAN_THE_PAGE = """() => Array.from(document.querySelectorAll("table"))
  .map((table) => ({id: table.id, right: Math.round(table.getBoundingClientRect().right)}))
  .filter((table) => table.right > document.documentElement.clientWidth)"""
PAGE_HEIGHT = "() => document.documentElement.scrollHeight"
