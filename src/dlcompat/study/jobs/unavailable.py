"""Job `unavailable`: records a cell the study cannot run here (a framework not installed, no converter path).

The reason becomes the cell's finding, with status `unavailable`, so the report lists it next to the
cells that ran instead of silently leaving it out.
"""

from __future__ import annotations

from dlcompat.frameworks.base import Unavailable
from dlcompat.study.jobs.base import JobContext


def run(ctx: JobContext) -> None:
    raise Unavailable(ctx.params["reason"])
