"""The report of a run as a `model.Document`: the one place that decides what the report says.

`build_document(run, rows)` walks the section registry (`sections.SECTIONS`) in order; `html.py` and
`markdown.py` only lay the document out, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import Document
from .rows import normalize_rows
from .run import run_info
from .sections import SECTIONS, RunData


def build_document(run: Any, rows: Iterable[Any] | None) -> Document:
    """Everything the report shows, from the run's info and its tidy measurement rows."""
    info = run_info(run)
    data = RunData(info, normalize_rows(rows))
    name = str(info.get("name") or info.get("id") or "unnamed run")
    subtitle_parts = [f"run {info['id']}" if info.get("id") else "",
                      f"created {info['created']}" if info.get("created") else "",
                      f"status {info['status']}" if info.get("status") else ""]
    subtitle = ", ".join(p for p in subtitle_parts if p)
    sections = [section for section in (spec.build(data) for spec in SECTIONS) if section is not None]
    return Document(title=f"dlcompat report: {name}", subtitle=subtitle, sections=sections)


__all__ = ["build_document"]
