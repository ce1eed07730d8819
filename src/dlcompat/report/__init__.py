"""The report layer: a run's tidy rows as an HTML report, a Markdown report, and CSV/Parquet exports.

Import-light on purpose; import the module you need:

- `dlcompat.report.build.write_report(run, rows, out_dir)` -> (report.html, report.md)
- `dlcompat.report.html.render_html(run, rows)` / `dlcompat.report.markdown.render_markdown(run, rows)`
- `dlcompat.report.export.write_csv(rows, path_or_None)` / `write_parquet(rows, path)`

`document.build_document` walks the section registry (`sections/`, one module per section, each owning
its answer, tables and charts) once, and both renderers lay out the same `model.Document`. Below the
sections: `rows` (the rows normalised and indexed by cell), `run` (the run's info), `targets` (what a
row's target is), `findings` and `finding_groups` (what failed, grouped by cause), `tables` and `charts`
(the building blocks sections share) and `formatting`.
"""
