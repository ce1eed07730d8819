"""The report as data: a document of sections, each an answer with its tables, charts and text blocks.

`html.py` and `markdown.py` lay out the same `Document`, so the two never disagree. A section also says
what it opens with: its headline (the answer's first sentences, or its own `opening`) and its lead, the one
chart or table that carries the answer; the HTML folds everything else. Markdown has no charts: every
number a chart shows is also in a table. A `Table` is a list of columns and a list of rows, each row a dict
from a column key to a `Cell`: the text a reader sees, the value a sortable table sorts by, and a status
the HTML colours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dlcompat import __version__

from .formatting import MISSING


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool = False
    #: long text a reader opens on demand: the HTML folds a row's detail columns into one cell at its end
    detail: bool = False


@dataclass(frozen=True)
class Cell:
    """One table cell: `text` is shown, `sort` orders it (None sorts last), `status` styles it."""

    text: str
    sort: float | str | None = None
    status: str = ""
    note: str = ""


#: the cell of a row that has no value in a column
EMPTY = Cell(MISSING)


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Cell]] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        """The rows as column label -> shown text (what a reader sees, in column order)."""
        return [{c.label: row.get(c.key, EMPTY).text for c in self.columns} for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Chart:
    """A plotly.js figure spec (data, layout, config) under its title (see `charts.py`)."""

    id: str
    title: str
    figure: dict[str, Any]


@dataclass(frozen=True)
class Block:
    """Preformatted text shown as it is (the study's TOML config)."""

    id: str
    title: str
    text: str
    language: str = ""


#: where one sentence of an answer ends and the next begins (answers are written by the sections; a
#: sentence may start with a model's lower-case name)
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Za-z0-9(\"'])")
#: how many sentences of its answer a section opens with; the HTML folds the rest
HEADLINE_SENTENCES = 2


def split_answer(answer: str, sentences: int = HEADLINE_SENTENCES) -> tuple[str, str]:
    """(the answer's first `sentences` sentences, the rest): the headline a reader sees first, then the detail."""
    parts = _SENTENCE_END.split(answer.strip())
    return " ".join(parts[:sentences]), " ".join(parts[sentences:])


@dataclass
class Section:
    """One part of the report: the question it answers in words, then the tables, charts and blocks behind it."""

    id: str
    title: str
    answer: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    #: the id of the chart or table that carries the answer; by default the first chart, else the first table
    lead_id: str = ""
    #: the sentence or two the section opens with, where its answer's first two would not do (the HTML then
    #: folds the whole answer after it)
    opening: str = ""
    #: how many of the answer's sentences the section opens with (without an `opening`)
    headline_sentences: int = HEADLINE_SENTENCES

    @property
    def has_data(self) -> bool:
        """False when the section is only its one-line answer (nothing measured)."""
        return bool(self.tables or self.charts or self.blocks)

    @property
    def headline(self) -> str:
        """What the section opens with: its `opening`, else its answer's first sentences."""
        return self.opening or split_answer(self.answer, self.headline_sentences)[0]

    @property
    def answer_detail(self) -> str:
        """The rest of the answer ('' when the headline says it all): all of it after an `opening`."""
        return self.answer if self.opening else split_answer(self.answer, self.headline_sentences)[1]

    @property
    def lead(self) -> Chart | Table | None:
        """The one chart or table shown right after the answer (the HTML folds the others)."""
        items: list[Chart | Table] = [*self.charts, *self.tables]
        chosen = next((item for item in items if item.id == self.lead_id), None) if self.lead_id else None
        return chosen or (items[0] if items else None)

    def is_lead(self, item: Chart | Table) -> bool:
        return item is self.lead


@dataclass
class Document:
    """A whole report (or comparison): its title, subtitle and sections, in order."""

    title: str
    subtitle: str
    sections: list[Section]
    generator: str = f"dlcompat {__version__}"

    def section(self, section_id: str) -> Section:
        return next(s for s in self.sections if s.id == section_id)


__all__ = ["EMPTY", "Block", "Cell", "Chart", "Column", "Document", "Section", "Table", "split_answer"]
