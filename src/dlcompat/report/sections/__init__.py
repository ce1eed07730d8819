"""The report's sections, one module each, and the registry `document.build_document` walks in order.

A section module owns its answer, its tables and its charts, and ends with its `SPEC` (id, title,
`build(run) -> Section | None`, and for a section that shows measurements, which rows are its own).
Adding a section is one module and one line in `SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import (
    check,
    deployment,
    environment,
    findings,
    localisation,
    migration,
    other,
    paper,
    robustness,
    summary,
    training,
)
from .base import RunData, SectionSpec

#: every section, in the order the report shows them: a summary, the paper's questions (where they apply), one per
#: research question, the localisation of
#: derived models (only when the run localised any), then findings and the environment ("other" only when the run
#: measured something no other section shows)
SECTIONS: tuple[SectionSpec, ...] = (
    summary.SPEC,
    paper.SPEC,  # a run that trained a model with a published accuracy: the paper's questions first
    check.SPEC,  # a check's report only: the user's model on every runtime
    training.SPEC,
    robustness.SPEC,
    migration.SPEC,
    deployment.SPEC,
    localisation.SPEC,
    other.SPEC,
    findings.SPEC,
    environment.SPEC,
)
#: the ids of the sections every report has, in order
SECTION_IDS: tuple[str, ...] = tuple(spec.id for spec in SECTIONS if spec.always)
SECTION_TITLES: dict[str, str] = {spec.id: spec.title for spec in SECTIONS}
#: the sections a measurement row can belong to, in the order a row is routed: an attack's rows are
#: robustness's whatever their metric, a native model's evaluation is training's
_ROUTES: tuple[SectionSpec, ...] = (check.SPEC, localisation.SPEC, robustness.SPEC, training.SPEC, migration.SPEC,
                                     deployment.SPEC)


def section_of(row: Mapping[str, Any]) -> str:
    """The id of the section that shows a (normalised) row: one per research question, else `other`."""
    return next((spec.id for spec in _ROUTES if spec.shows is not None and spec.shows(row)), other.SPEC.id)


__all__ = ["SECTIONS", "SECTION_IDS", "SECTION_TITLES", "RunData", "SectionSpec", "section_of"]
