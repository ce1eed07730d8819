"""Reading a rendered report back: attributes, scripts and figures of the HTML; tables of the Markdown."""

from __future__ import annotations

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
