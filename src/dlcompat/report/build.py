"""Write a run's report files: `report.html` and `report.md`, side by side, atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import html, markdown
from .atomic import atomic_write_text
from .document import build_document

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"


def write_report(run: Any, rows: Iterable[Any] | None, out_dir: Path) -> tuple[Path, Path]:
    """Build the report once and write it as HTML and Markdown into `out_dir` (created if needed).

    Returns `(html_path, markdown_path)`.
    """
    document = build_document(run, rows)
    out_dir = Path(out_dir)
    html_path = atomic_write_text(out_dir / HTML_NAME, html.render_document(document))
    markdown_path = atomic_write_text(out_dir / MARKDOWN_NAME, markdown.render_document(document))
    return html_path, markdown_path


__all__ = ["HTML_NAME", "MARKDOWN_NAME", "write_report"]
