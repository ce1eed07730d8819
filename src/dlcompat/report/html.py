"""The HTML report: one self-contained file (plotly.js inline, no URL to fetch), autoescaped Jinja2.

Opened from a laptop's disk, on a machine with no network, or attached to an issue, it shows the
same thing: its Content-Security-Policy forbids every network request, so not even plotly.js can
reach out. User-supplied strings (run names, model names, error texts, the config) are escaped by
the template; figure specs go in through Jinja's `tojson`, which escapes `<`, `>` and `&`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .document import Document, build_document
from .formatting import error_summary
from .tables import EMPTY

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"

#: Error texts with more lines than this fold into a <details> (opened for printing).
FOLD_LINES = 12

#: No network at all: scripts and styles only inline, images only data:/blob: (plotly's PNG export).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["summary"] = error_summary
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False, "ensure_ascii": False}
    return env


@lru_cache(maxsize=1)
def plotly_bundle() -> Markup:
    """plotly.js, minified, ready to sit inside a <script> element."""
    from plotly.offline import get_plotlyjs

    # The bundle has no "</script" today; make sure a future one cannot close our element early.
    return Markup(get_plotlyjs().replace("</script", "<\\/script"))


def render_document(document: Document) -> str:
    """Lay a built document out as one self-contained HTML page."""
    has_charts = any(section.charts for section in document.sections)
    return environment().get_template(TEMPLATE).render(
        doc=document,
        empty_cell=EMPTY,
        fold_lines=FOLD_LINES,
        csp=CONTENT_SECURITY_POLICY,
        plotlyjs=plotly_bundle() if has_charts else Markup(""),
    )


def render_html(run: Any, rows: Iterable[Any] | None) -> str:
    """The HTML report of a run: `run` is its info (a dict), `rows` its tidy measurement rows."""
    return render_document(build_document(run, rows))


__all__ = ["CONTENT_SECURITY_POLICY", "render_document", "render_html"]
