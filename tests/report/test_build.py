"""write_report: both files, atomically, into a folder it creates."""

from __future__ import annotations

from pathlib import Path

from dlcompat.report.build import write_report


def test_write_report_writes_html_and_markdown(tmp_path: Path, run: dict, rows: list[dict]) -> None:
    out_dir = tmp_path / "runs" / "3f2a9c1b"
    html_path, markdown_path = write_report(run, rows, out_dir)

    assert (html_path, markdown_path) == (out_dir / "report.html", out_dir / "report.md")
    assert html_path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert markdown_path.read_text(encoding="utf-8").startswith("# dlcompat report: quick")
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html", "report.md"]


def test_write_report_replaces_a_previous_report(tmp_path: Path, run: dict, rows: list[dict]) -> None:
    write_report(run, rows, tmp_path)
    run["name"] = "second"
    _, markdown_path = write_report(run, [], tmp_path)
    assert markdown_path.read_text(encoding="utf-8").startswith("# dlcompat report: second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md"]
