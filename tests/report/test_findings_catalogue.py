"""The findings section is led by the catalogue: one line per cause with its cells, the versions involved, its
upstream status and, once the run's causes were exported (`dlcompat findings RUN --export DIR`, which writes
OUT/reproducers/RUN.json), its reproducer folder with what `dlcompat findings verify` found there."""

from __future__ import annotations

import json
from pathlib import Path

from dlcompat.findings.reproducer import Problem
from dlcompat.findings.study_export import catalogue_entry
from dlcompat.report.document import build_document
from dlcompat.report.finding_groups import group_findings, ordered_groups
from dlcompat.report.reproducers import catalogue_path
from dlcompat.report.rows import normalize_rows
from dlcompat.report.run import run_info

ISSUE = "https://github.com/microsoft/onnxruntime/issues/1"


def _export(tmp_path: Path, run: dict, label: str) -> Path:
    """What `findings RUN --export` leaves: a reproducer folder, verified, and the catalogue where the report looks."""
    folder = tmp_path / "export" / "onnxruntime-error-Relu"
    folder.mkdir(parents=True)
    problem = Problem("onnxruntime-error-Relu", "onnxruntime", "error", "onnxruntime 1.32.0: Error (Relu model)", "E",
                      "runs", versions={"onnxruntime": "1.32.0"}, cells=["c1", "c2"], op_types=["Relu"], minimal=True,
                      minimal_note="1-minimal (Relu: cannot remove: it is the only node)", upstream=ISSUE)
    (folder / "verified.json").write_text(json.dumps({"folder": str(folder), "python": "3.11",
                                                      "outcome": {"code": 1, "output": "", "seconds": 1.0},
                                                      "newest": "still present in 1.33.0", "notes": []}))
    index = catalogue_path(run_info(run))
    assert index == tmp_path / "out" / "reproducers" / f"{run['id']}.json"
    index.parent.mkdir(parents=True)
    index.write_text(json.dumps({"export": str(folder.parent), "causes": [catalogue_entry(label, problem, folder)]}))
    return folder


def test_the_catalogue_names_each_causes_reproducer_and_upstream_status(tmp_path, study_run, study_rows):
    study_run["artifacts"] = str(tmp_path / "out" / "artifacts")
    groups = ordered_groups(group_findings(normalize_rows(study_rows), run_info(study_run)))
    number = next(i for i, g in enumerate(groups, start=1) if g.status == "failed")
    folder = _export(tmp_path, study_run, f"G{number}")
    section = build_document(study_run, study_rows).section("findings")
    (table,) = section.tables
    assert table.title.startswith("Catalogue of causes")
    records = {r["#"]: r for r in table.records()}
    line = records[f"G{number}"]
    assert line["reproducer"] == f"{folder} (1-minimal; reproduces in a fresh environment)"
    assert line["upstream"] == f"known upstream: {ISSUE}; still present in 1.33.0"
    assert line["versions involved"] and line["cells"] == str(len(groups[number - 1].members))
    assert all(r["reproducer"] == "—" for key, r in records.items() if key != f"G{number}")
    assert "1 cause has a reproducer folder: 1 proven 1-minimal, 1 verified in a fresh environment, 1 already" in (
        section.answer)


def test_without_an_export_the_section_says_how_to_make_one(tmp_path, study_run, study_rows):
    study_run["artifacts"] = str(tmp_path / "out" / "artifacts")
    section = build_document(study_run, study_rows).section("findings")
    assert f"No reproducers were exported for this run: `dlcompat findings {study_run['id']} --export DIR`" in (
        section.answer)
    assert {r["reproducer"] for r in section.tables[0].records()} == {"—"}
