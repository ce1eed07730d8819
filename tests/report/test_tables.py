"""The shared tables: findings, training, latency, conversions; both renderers show exactly their text."""

from __future__ import annotations

from markupsafe import escape

from dlcompat.metrics.record import Measurement
from dlcompat.report.document import build_document
from dlcompat.report.findings import findings
from dlcompat.report.html import render_document as render_html_document
from dlcompat.report.markdown import escape_cell, escape_text
from dlcompat.report.markdown import render_document as render_markdown_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.run import run_info
from dlcompat.report.sections.environment import environment_table, methods_table
from dlcompat.report.sections.training import training_table
from dlcompat.report.tables import conversions_table, latency_table

from .conftest import CONVERSION_ERROR, DYNAMO, TORCHSCRIPT, row


def test_several_seeds_get_a_seed_column(rows: list[dict]) -> None:
    more = [r | {"seed": 1, "value": None if r["value"] is None else r["value"] * 1.01} for r in rows]
    table = latency_table(normalize_rows(rows + more))
    assert "seed" in [c.key for c in table.columns]
    assert len(table) == 8
    assert len(training_table(normalize_rows(rows + more))) == 4


def test_findings_group_one_jobs_failures_and_add_inconsistencies(rows: list[dict]) -> None:
    found = findings(normalize_rows(rows))
    assert [f.status for f in found] == ["failed", "inconsistent"]
    failed, inconsistent = found
    assert failed.metrics == ("convert",) and failed.whole_job
    assert failed.error == CONVERSION_ERROR and failed.kind == "convert"
    assert inconsistent.model == "lenet5" and inconsistent.variant == DYNAMO
    assert inconsistent.error == ("3 of 360 test images (0.83 %) changed label against PyTorch; "
                                  "max |Δlogit| 2.4.")


def test_unavailable_rows_are_findings_too(rows: list[dict]) -> None:
    rows.append(row("accuracy", None, "fraction", target="litert", variant="fp16", status="unavailable",
                    error="LiteRT is not installed: pip install 'dlcompat[litert]'"))
    statuses = [f.status for f in findings(normalize_rows(rows))]
    assert statuses == ["failed", "unavailable", "inconsistent"]


def test_training_and_latency_tables(rows: list[dict]) -> None:
    training = training_table(normalize_rows(rows)).records()
    assert training == [
        {"dataset": "digits", "model": "lenet1", "framework": "pytorch", "train time": "4.2 s",
         "time / epoch": "0.84 s", "final train loss": "0.081", "val accuracy": "91.90 %"},
        {"dataset": "digits", "model": "lenet5", "framework": "pytorch", "train time": "9.7 s",
         "time / epoch": "1.94 s", "final train loss": "0.034", "val accuracy": "96.60 %"},
    ]
    latency = latency_table(normalize_rows(rows))
    assert [c.label for c in latency.columns][5:] == ["min", "p10", "p50", "p90", "p99", "mean", "std",
                                                       "first call", "api", "batch", "repeats", "threads"]
    assert latency.records()[1]["api"] == "onnxruntime.InferenceSession.run"
    assert len(latency) == 4  # the failed conversion was never timed


def test_a_failed_training_job_fills_its_row(rows: list[dict]) -> None:
    rows = [r for r in rows if not (r["kind"] == "train" and r["model"] == "lenet5")]
    rows.append(row("train", None, "", model="lenet5", kind="train", status="failed", error="CUDA OOM"))
    records = training_table(normalize_rows(rows)).records()
    assert records[1]["train time"] == "failed" and records[1]["val accuracy"] == "failed"
    assert "train" not in records[1]  # the failure row is not a metric column


def test_conversions_table_names_the_tool_and_its_version(rows: list[dict]) -> None:
    records = conversions_table(normalize_rows(rows)).records()
    assert records[0] == {"dataset": "digits", "model": "lenet1", "framework": "pytorch", "target": "onnx",
                          "variant": DYNAMO, "converter": "torch.onnx", "tool": "torch.onnx.export",
                          "tool version": "2.13.0", "time": "1.9 s", "size": "31.2 kB"}
    assert records[2]["variant"] == TORCHSCRIPT and records[2]["time"] == "failed"


def test_rows_may_be_measurements_or_partial_dicts() -> None:
    measurement = Measurement("digits", "lenet1", "pytorch", "accuracy", 0.9, "fraction")
    partial = {"model": "lenet5", "metric": "accuracy", "value": "0.8", "method": '{"n": 360}'}
    normalized = normalize_rows([measurement, partial])
    assert normalized[1]["value"] == 0.8 and normalized[1]["method"] == {"n": 360}
    assert normalized[1]["status"] == "ok" and normalized[1]["seed"] is None
    assert [r["model"] for r in normalized] == ["lenet1", "lenet5"]


def test_html_and_markdown_show_the_same_cell_texts(run: dict, rows: list[dict]) -> None:
    document = build_document(run, rows)
    page = render_html_document(document)
    text = render_markdown_document(document)
    for section in document.sections:
        opened = section.answer_detail if section.opening else f"{section.headline} {section.answer_detail}".strip()
        assert opened == section.answer  # the HTML shows every sentence of the answer
        assert str(escape(section.headline)) in page and str(escape(section.answer_detail)) in page
        assert escape_text(section.answer) in text  # the Markdown keeps the answer whole
        for table in section.tables:
            for record in table.records():
                for value in record.values():
                    if "\n" not in value:
                        assert str(escape(value)) in page, value
                        assert escape_cell(value) in text, value


def test_environment_lists_each_fact_once(run: dict, rows: list[dict]) -> None:
    run["environment"] |= {"seeds": [0], "threads": 1, "torch_threads": 1, "gpu": {"name": "none"}}
    fields = [r["field"] for r in environment_table(run_info(run), normalize_rows(rows)).records()]
    assert fields == ["Python", "platform", "CPU", "CPUs", "torch_threads", "threads", "seeds"]


def test_methods_table_leaves_out_artifact_references_and_repeated_runtime_facts() -> None:
    reference = "objects/ab/" + "0123456789abcdef" * 4 + ".npy"
    rows = [
        row("latency_p50", 0.1, "ms", method={"api": "InferenceSession.run", "threads": 1}),
        row("accuracy", 0.9, "fraction", method={"api": "InferenceSession.run", "images": 360}),
        row("label_flips", 0, "count", kind="compare", target="onnxruntime",
            method={"source_logits": reference, "images": 360}),
        row("train_time", 2.0, "s", kind="train", method={"threads": 1}),
    ]
    records = [(r["measurement"], r["field"], r["value(s)"])
               for r in methods_table(normalize_rows(rows)).records()]
    assert records == [
        ("latency", "api", "InferenceSession.run"),
        ("latency", "threads", "1"),
        ("training", "threads", "1"),
        ("comparison", "images", "360"),
        ("accuracy", "images", "360"),
    ]
