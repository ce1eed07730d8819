"""The HTML report: one self-contained file (plotly.js inline, no URL to fetch), autoescaped Jinja2.

Opened from a laptop's disk, on a machine with no network, or attached to an issue, it shows the
same thing: its Content-Security-Policy forbids every network request, so not even plotly.js can
reach out. User-supplied strings (run names, model names, error texts, the config) are escaped by
the template; figure specs go in through Jinja's `tojson`, which escapes `<`, `>` and `&`.

Read in five minutes: each section shows its answer and the one chart or table that carries it
(`Section.lead`); its other charts, tables and blocks are folded, each under its title, and a chart is
drawn when its fold first opens. plotly.js is the cartesian bundle (a third of the full one), gzipped
and base64-encoded in the page, unpacked by the browser: the page stays small enough to attach.
"""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dlcompat.envs.registry import PROJECT_ROOT

from .document import build_document
from .formatting import error_summary
from .model import EMPTY, Document

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"

#: Error texts with more lines than this fold into a <details> (opened for printing).
FOLD_LINES = 12
#: Text cells longer than this may break anywhere (a path, an error line), so that their table fits the page;
#: shorter ones break between words only.
LONG_CELL = 30

#: plotly.js's cartesian bundle (npm `plotly.js-cartesian-dist-min`, MIT), pinned in web/package.json at the plotly
#: package's plotly.js version and installed with the web runtimes by `make setup` (`DLCOMPAT_WEB_DIR` as for them)
PLOTLY_CARTESIAN = (Path(os.environ.get("DLCOMPAT_WEB_DIR", PROJECT_ROOT / "web")) / "node_modules"
                    / "plotly.js-cartesian-dist-min" / "plotly-cartesian.min.js")
#: the trace types that bundle draws; a figure with any other type gets the plotly package's full bundle
CARTESIAN_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
                              "image", "pie", "scatter", "scatterternary", "violin"})

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
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False, "ensure_ascii": False,
                                         "separators": (",", ":")}
    return env


@lru_cache(maxsize=2)
def plotly_source(full: bool = False) -> str:
    """plotly.js, minified: the cartesian bundle, or (`full`, or where web/node_modules lacks it) the plotly
    package's full one."""
    if not full and PLOTLY_CARTESIAN.is_file():
        return PLOTLY_CARTESIAN.read_text(encoding="utf-8")
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@lru_cache(maxsize=2)
def plotly_payload(full: bool = False) -> str:
    """plotly.js gzipped (deterministically: no timestamp) and base64-encoded, for the page to unpack."""
    packed = gzip.compress(plotly_source(full).encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def needs_full_plotly(document: Document) -> bool:
    """Whether some chart draws a trace type the cartesian bundle lacks."""
    return any(trace.get("type", "scatter") not in CARTESIAN_TRACES
               for section in document.sections for chart in section.charts
               for trace in chart.figure.get("data", ()) if isinstance(trace, dict))


def render_document(document: Document) -> str:
    """Lay a built document out as one self-contained HTML page."""
    has_charts = any(section.charts for section in document.sections)
    return environment().get_template(TEMPLATE).render(
        doc=document,
        empty_cell=EMPTY,
        fold_lines=FOLD_LINES,
        long_cell=LONG_CELL,
        csp=CONTENT_SECURITY_POLICY,
        plotly_payload=plotly_payload(needs_full_plotly(document)) if has_charts else "",
    )


def render_html(run: Any, rows: Iterable[Any] | None) -> str:
    """The HTML report of a run: `run` is its info (a dict), `rows` its tidy measurement rows."""
    return render_document(build_document(run, rows))


__all__ = ["CARTESIAN_TRACES", "CONTENT_SECURITY_POLICY", "plotly_payload", "plotly_source", "render_document",
           "render_html"]
