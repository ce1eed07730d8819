"""What the section registry knows of a section: its id and title, how it is built, which rows it shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import Section


@dataclass(frozen=True)
class RunData:
    """What every section is built from: the run's info (`run.run_info`) and its normalised rows."""

    info: dict[str, Any]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class SectionSpec:
    """A report section as the registry lists it: `build` makes it from the run (None: it has nothing to show)."""

    id: str
    title: str
    build: Callable[[RunData], Section | None]
    #: every report has this section (one that is not, `other`, appears only when it has something to show)
    always: bool = True
    #: whether a normalised row is a measurement this section shows (None: it shows no rows of its own)
    shows: Callable[[Mapping[str, Any]], bool] | None = None


__all__ = ["RunData", "SectionSpec"]
