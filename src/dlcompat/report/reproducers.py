"""The reproducers exported for a run's causes, as its report's findings catalogue shows them.

`dlcompat findings RUN --export DIR` writes a reproducer folder per failed cause that reproduces standalone, and the
catalogue of them (`findings/study_export.py`) both in DIR and at OUT/reproducers/RUN.json, beside the run's
artifacts: that second copy is what the report reads, so a report built after an export names each cause's
reproducer folder, whether it is 1-minimal, the upstream issue it matches, and what `dlcompat findings verify`
found (`verified.json` in the folder: reproduces in a fresh environment; still present or fixed in the newest
release). JSON only: nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: OUT/reproducers/RUN.json (the catalogue of the run's exported reproducers)
FOLDER = "reproducers"


@dataclass(frozen=True)
class Reproducer:
    """A cause's reproducer folder, as the catalogue line shows it."""

    folder: str
    minimal: bool
    minimal_note: str
    upstream: str  # the upstream issue it matches, or ""
    verified: str  # `dlcompat findings verify`'s verdict, or "" when not verified
    newest: str  # "still present in X.Y" / "fixed in X.Y", or ""

    @property
    def status(self) -> str:
        """`known upstream: URL; still present in X.Y`, or `none found upstream; ...`."""
        parts = [f"known upstream: {self.upstream}" if self.upstream else "no upstream issue found"]
        return "; ".join([*parts, *([self.newest] if self.newest else [])])

    @property
    def line(self) -> str:
        """`FOLDER (1-minimal; reproduces in a fresh environment)`."""
        minimal = "1-minimal" if self.minimal else (self.minimal_note or "not proven minimal")
        return f"{self.folder} ({'; '.join([minimal, *([self.verified] if self.verified else [])])})"


def catalogue_path(info: Mapping[str, Any]) -> Path | None:
    """OUT/reproducers/RUN.json for the run `info` describes (OUT: the folder of its `artifacts`), or None."""
    artifacts, run_id = info.get("artifacts"), info.get("id")
    return Path(str(artifacts)).parent / FOLDER / f"{run_id}.json" if artifacts and run_id else None


def _verified(folder: Path) -> tuple[str, str]:
    try:
        data = json.loads((folder / "verified.json").read_text())
    except (OSError, ValueError):
        return "", ""
    outcome = data.get("outcome") or {}
    code = outcome.get("code")
    verdict = {1: "reproduces in a fresh environment", 0: "does not reproduce in a fresh environment"}.get(
        code, "verification could not tell" if outcome else "")
    return verdict, str(data.get("newest") or "")


def reproducers(info: Mapping[str, Any]) -> dict[str, Reproducer]:
    """The run's exported reproducers by cause id (`G3`); empty where none was exported or the file is unreadable."""
    path = catalogue_path(info)
    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}
    out = {}
    for entry in data.get("causes", []):
        folder = Path(str(entry.get("folder", "")))
        verified, newest = _verified(folder)
        out[str(entry.get("label"))] = Reproducer(str(folder), bool(entry.get("minimal")),
                                                  str(entry.get("minimal_note") or ""),
                                                  str(entry.get("upstream") or ""), verified, newest)
    return out


__all__ = ["FOLDER", "Reproducer", "catalogue_path", "reproducers"]
