"""The Markdown report: same sections as the HTML, tables that cannot break, text that stays text."""

from __future__ import annotations

import re

import pytest

from dlcompat.report.document import build_document
from dlcompat.report.markdown import escape_cell, escape_text, fenced, render_markdown

from .conftest import CONFIG_TOML, CONVERSION_ERROR, row
from .helpers import markdown_tables


@pytest.fixture
def text(run: dict, rows: list[dict]) -> str:
    return render_markdown(run, rows)


def test_same_sections_as_the_html(run: dict, rows: list[dict], text: str) -> None:
    titles = [s.title for s in build_document(run, rows).sections]
    assert re.findall(r"^## (.+)$", text, flags=re.M) == titles == [
        "Summary", "Training across frameworks", "Robustness across frameworks", "Migration across frameworks",
        "Deployment: server, mobile and web", "Findings", "Environment and method"]


def test_deployment_table_header_and_rows(text: str) -> None:
    table = next(t for t in markdown_tables(text) if t[0][:3] == ["platform", "model", "framework"])
    assert table[0][:6] == ["platform", "model", "framework", "runtime", "converter path", "precision"]
    assert len(table) == 1 + 2
    flipped = next(r for r in table if r[1] == "lenet5")
    columns = dict(zip(table[0], flipped, strict=True))
    assert columns["accuracy"] == "98.06 %" and columns["label flips"] == "3 (0.83 %)"
    assert columns[r"max \|Δ logit\|"] == "2.4" and columns["platform"] == "server"
    # The failed conversion keeps its place among the conversions, marked failed.
    assert "| digits | lenet5 | pytorch | onnx | torch.onnx (torchscript) | — | — | — | failed | failed |" in text


def test_numeric_columns_are_right_aligned(text: str) -> None:
    assert "|---|---|---|---:|---:|---:|" in text  # the training table


def test_every_table_row_has_as_many_cells_as_its_header(run: dict, rows: list[dict]) -> None:
    for r in rows:
        if r["model"] == "lenet5":
            r["model"] = "le|net5"
    rows.append(row("accuracy", None, "fraction", target="litert", variant="a|b", status="failed",
                    error="one | two\nthree | four"))
    text = render_markdown(run, rows)
    assert r"le\|net5" in text and r"a\|b" in text
    for table in markdown_tables(text):
        assert {len(r) for r in table} == {len(table[0])}, table


def test_findings_show_the_summary_and_the_full_error(text: str) -> None:
    findings = text[text.index("## Findings"):text.index("## Environment")]
    table = markdown_tables(findings)[0]
    assert table[0] == ["#", "status", "tool", "cells", "error (normalised)", "upstream", "reproducer",
                        "layers / operators", "which cells",
                        "full error (first cell)", "versions involved", "artifacts"]
    assert table[1][:4] == ["G1", "failed", "torch.onnx (torchscript)", "1"]
    assert table[1][4].endswith("to ONNX opset version N is not supported \\| see &lt;url&gt;")
    assert table[1][7] == "aten::max_pool2d_with_indices"  # intraword underscores need no escape
    assert table[1][9].startswith("torch.onnx.errors.UnsupportedOperatorError: Exporting the operator")
    assert table[1][9].endswith("(full text under G1)")
    assert table[2][:2] == ["G2", "inconsistent"]
    assert fenced(CONVERSION_ERROR) in findings  # verbatim, pipes and all, in a code block


def test_config_is_reproduced_in_a_toml_block(text: str) -> None:
    assert "```toml\n" + CONFIG_TOML.rstrip() + "\n```" in text


def test_html_in_user_strings_stays_text(run: dict, rows: list[dict]) -> None:
    evil = "<script>alert(1)</script>"
    run["name"] = evil
    for r in rows:
        r["model"] = evil if r["model"] == "lenet1" else r["model"]
    text = render_markdown(run, rows)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize(("raw", "cell", "paragraph"), [
    ("a|b", r"a\|b", "a|b"),
    ("x86_64 and _private_", r"x86_64 and \_private\_", r"x86_64 and \_private\_"),
    ("*bold* `code`", r"\*bold\* \`code\`", r"\*bold\* \`code\`"),
    ("[link](javascript:x)", r"[link\](javascript:x)", r"[link\](javascript:x)"),
    ("AT&T &amp; <b>", "AT&T &amp;amp; &lt;b&gt;", "AT&T &amp;amp; &lt;b&gt;"),
    ("two\nlines", "two<br>lines", "two lines"),
    ("back\\slash", r"back\\slash", r"back\\slash"),
])
def test_escaping(raw: str, cell: str, paragraph: str) -> None:
    assert escape_cell(raw) == cell
    assert escape_text(raw) == paragraph


def test_fence_outlasts_backticks_in_the_text() -> None:
    block = fenced("a ```` b")
    assert block.startswith("`````\n") and block.endswith("\n`````")


def test_empty_rows_render(run: dict) -> None:
    text = render_markdown(run, [])
    assert text.count("\n## ") == 7
    assert "No model was trained in this run." in text
    bare = render_markdown(None, None)
    assert bare.startswith("# dlcompat report: unnamed run\n")
    assert "The run recorded no environment." in bare


def test_unknown_metrics_get_their_own_section(run: dict, rows: list[dict]) -> None:
    rows.append(row("robust_accuracy_pgd", 0.12, "fraction", target="onnxruntime", method={"eps": 0.3}))
    text = render_markdown(run, rows)
    other = text[text.index("## Other measurements"):text.index("## Findings")]
    assert r"robust\_accuracy\_pgd" not in other  # intraword underscores are left alone
    assert "robust_accuracy_pgd" in other and "12.00 %" in other and '{"eps":0.3}' in other
