"""The HTML report: self-contained, escaped, every section, findings with their full error text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import plotly.graph_objects as go
import pytest
from markupsafe import escape

from dlcompat.report.document import build_document
from dlcompat.report.html import (
    PLOTLY_CARTESIAN,
    TEMPLATES,
    needs_full_plotly,
    plotly_source,
    render_document,
    render_html,
)
from dlcompat.report.model import Chart, split_answer
from dlcompat.report.sections import SECTION_IDS

from .conftest import CONVERSION_ERROR, row
from .helpers import figures, parse_page, plotly_in, scripts_are_ours_or_inert

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def page(run: dict, rows: list[dict]) -> str:
    return render_html(run, rows)


def test_no_external_url_in_any_src_or_href(page: str) -> None:
    parsed = parse_page(page)
    links = [(tag, name, value) for tag, attrs in parsed.elements for name, value in attrs.items()
             if name in ("src", "href", "srcset", "action", "data", "poster")]
    assert all(value.startswith("#") for _, _, value in links), links
    assert not any(tag in ("link", "iframe", "img", "object", "embed") for tag, _ in parsed.elements)
    assert not any("src" in attrs for attrs, _ in parsed.scripts)


def test_plotly_is_bundled_inline_and_network_is_forbidden(page: str) -> None:
    parsed = parse_page(page)
    assert plotly_in(page) == plotly_source() == PLOTLY_CARTESIAN.read_text(encoding="utf-8")
    csp = next(attrs["content"] for tag, attrs in parsed.elements
               if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    assert "connect-src" not in csp  # falls back to default-src 'none'


def test_the_cartesian_bundle_is_the_plotly_packages_plotly_js_version() -> None:
    from plotly.offline import get_plotlyjs_version

    header = PLOTLY_CARTESIAN.read_text(encoding="utf-8")[:200]
    assert f"plotly.js (cartesian - minified) v{get_plotlyjs_version()}" in header


def test_a_trace_the_cartesian_bundle_lacks_gets_the_full_plotly_js(run: dict, rows: list[dict]) -> None:
    document = build_document(run, rows)
    assert not needs_full_plotly(document)
    document.sections[1].charts.append(Chart("globe", "A globe", {"data": [{"type": "scattergeo"}], "layout": {}}))
    assert needs_full_plotly(document)
    assert plotly_in(render_document(document)) == plotly_source(full=True) != plotly_source()


def test_every_section_has_its_id_and_an_answer(page: str) -> None:
    parsed = parse_page(page)
    section_ids = [attrs.get("id") for tag, attrs in parsed.elements if tag == "section"]
    assert section_ids == list(SECTION_IDS)
    assert page.count('<p class="answer') == len(SECTION_IDS)


def test_answers_are_written_from_the_numbers(page: str) -> None:
    assert ("1 of 2 changed labels, most of all ONNX Runtime · torch.onnx (dynamo) (lenet5 from PyTorch: 3 images, "
            "0.83 %)") in page
    assert "Median latency per image ran from 0.029 ms (ONNX Runtime · torch.onnx (dynamo), lenet1) to 0.047 ms" \
        in page
    assert "11 of 14 jobs succeeded; 1 failed and 2 were skipped after a failure upstream." in page


def test_agreement_answer_when_nothing_flips(run: dict, rows: list[dict]) -> None:
    for r in rows:
        if r["metric"] in ("label_flips", "label_flip_rate") and r["status"] == "ok":
            r["value"] = 0.0
        if r["metric"] == "max_abs_logit_diff":
            r["value"] = 3.1e-6
    page = render_html(run, rows)
    assert "Every one of the 2 compared deployments predicted the same labels as its source." in page
    assert "figure-label-flips-server" not in figures(page)  # no chart of zeros


def test_findings_list_the_full_error_text(page: str) -> None:
    findings = page[page.index('<section id="findings"'):page.index('<section id="environment"')]
    assert str(escape(CONVERSION_ERROR)) in findings
    assert "status-failed" in findings and "status-inconsistent" in findings
    assert "aten::max_pool2d_with_indices" in findings  # the operator the error names
    assert "3 of 360 test images (0.83 %) changed label against PyTorch" in findings


def test_user_strings_are_escaped_everywhere(run: dict, rows: list[dict]) -> None:
    for r in rows:
        if r["model"] == "lenet5":
            r["model"] = EVIL
    rows.append(row("accuracy", None, "fraction", model=EVIL, target="litert", variant=EVIL,
                    status="failed", error=f"boom {EVIL}\nsecond line"))
    run["name"] = EVIL
    run["config_toml"] = f'name = "{EVIL}"\n'
    run["environment"]["cpu"] = EVIL

    page = render_html(run, rows)

    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The only scripts: our own, and inert data (JSON figures, plotly.js packed).
    assert scripts_are_ours_or_inert(page)
    # Inside figures, the name is HTML-escaped too (plotly.js would read tags in labels as markup).
    names = [trace["name"] for figure in figures(page).values() for trace in figure["data"]]
    xs = [str(x) for figure in figures(page).values() for trace in figure["data"] for x in trace["x"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in xs
    assert not any("<script" in text for text in [*names, *xs])


def test_figures_are_valid_plotly_specs(page: str) -> None:
    specs = figures(page)
    assert set(specs) == {"figure-framework-accuracy", "figure-deployment-digits-lenet1",
                          "figure-deployment-digits-lenet5", "figure-latency-server", "figure-label-flips-server"}
    for spec in specs.values():
        go.Figure(data=spec["data"], layout=spec["layout"])  # raises on an unknown property
        assert spec["config"]["displaylogo"] is False
    latency = specs["figure-latency-server"]["data"]
    assert {trace["name"] for trace in latency} == {"PyTorch (native)", "ONNX Runtime · torch.onnx (dynamo)"}
    native = next(trace for trace in latency if trace["name"] == "PyTorch (native)")
    assert native["y"] == [0.081, 0.142]
    assert native["error_y"]["arrayminus"][0] == pytest.approx(0.081 * 0.08)
    assert native["error_y"]["array"][0] == pytest.approx(0.081 * 0.21)


def test_every_table_is_sortable_and_the_page_prints(page: str) -> None:
    parsed = parse_page(page)
    tables = [attrs for tag, attrs in parsed.elements if tag == "table"]
    assert tables and all("sortable" in attrs.get("class", "") for attrs in tables)
    assert 'querySelectorAll("table.sortable")' in page
    assert "@media print" in page


def test_numeric_cells_carry_their_sort_value(page: str) -> None:
    parsed = parse_page(page)
    sorts = [attrs["data-sort"] for tag, attrs in parsed.elements
             if tag == "td" and "num" in attrs.get("class", "") and "data-sort" in attrs]
    assert "0.9722" in sorts and "251877.0" in sorts


def test_empty_rows_render_every_section_in_one_line(run: dict) -> None:
    page = render_html(run, [])
    parsed = parse_page(page)
    assert [attrs.get("id") for tag, attrs in parsed.elements if tag == "section"] == list(SECTION_IDS)
    assert "No model was trained in this run." in page
    # every empty section says what to configure to get it
    assert "give the study config an [attacks] section" in page
    assert "set `migration = [&#34;weights&#34;, &#34;converters&#34;]`" in page
    assert "list runtimes in the study config" in page
    assert "Nothing failed" in page
    assert figures(page) == {}
    assert plotly_in(page) is None  # no charts, no plotly.js
    assert render_html(None, None).count("<section") == len(SECTION_IDS)


def test_unknown_metrics_are_shown_not_dropped(run: dict, rows: list[dict]) -> None:
    rows += [
        row("robust_accuracy_fgsm", 0.42, "fraction", target="onnxruntime", variant="eps=0.1",
            method={"eps": [0.05, 0.1], "norm": "inf"}),
        row("energy", 1.5e-3, "J", model="lenet5"),
        row("attack_time", None, "s", status="unavailable", error="ART is not installed"),
        row("train_peak_memory", 1.2e9, "bytes", kind="train"),
        row("weird", 7.0, "furlongs"),
        row("odd", 1.0, "", status="strange-status", error="a status this report does not know"),
    ]
    page = render_html(run, rows)
    other = page[page.index('<section id="other"'):page.index('<section id="findings"')]
    for text in ("robust_accuracy_fgsm", "42.00 %", "energy", "0.0015 J", "attack_time", "unavailable",
                 "weird", "7 furlongs"):
        assert text in other, text
    assert "ART is not installed" in page
    findings = page[page.index('<section id="findings"'):page.index('<section id="environment"')]
    assert "strange-status" in findings and "a status this report does not know" in findings
    training = page[page.index('<section id="training"'):page.index('<section id="robustness"')]
    assert "train peak memory" in training and "1.2 GB" in training


def test_long_tracebacks_fold_but_stay_in_the_page(run: dict, rows: list[dict]) -> None:
    long_error = "Traceback (most recent call last):\n" + "\n".join(f"  frame {i}" for i in range(40)) \
        + "\nValueError: the real reason"
    rows.append(row("accuracy", None, "fraction", target="litert", status="failed", error=long_error))
    page = render_html(run, rows)
    assert "<details><summary>ValueError: the real reason" in page
    assert str(escape(long_error)) in page


def test_report_script_is_valid_javascript(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, "--check", str(TEMPLATES / "report.js")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_run_info_may_be_an_object(rows: list[dict]) -> None:
    class RunInfo:
        def model_dump(self) -> dict:
            return {"id": "abc", "name": "from-object", "jobs": {"total": 1, "ok": 1}}

    assert "from-object" in render_html(RunInfo(), rows)


@pytest.mark.parametrize("run_info", [
    None,
    {},
    {"environment": "a string", "jobs": None, "seeds": 3, "threads": "auto", "config_toml": None},
    {"environment": {"packages": ["torch"], "cpu_count": "many"}, "jobs": {"total": "x"}},
])
def test_odd_inputs_never_crash(run_info: dict | None, rows: list[dict]) -> None:
    odd = [
        {"metric": "label_flips", "value": float("inf"), "target": "onnxruntime", "framework": "pytorch"},
        {"metric": "accuracy", "value": "0.5", "status": None, "method": "not json"},
        {"metric": "latency_p50", "value": "abc", "unit": None, "seed": "2"},
        {"model": "m", "metric": "mystery", "value": True, "status": "weird"},
        {},
    ]
    page = render_html(run_info, rows + odd)
    assert page.count("<section ") == len(SECTION_IDS) + 1  # + "Other measurements"
    assert "inf" in page  # an infinite value is shown as measured, but left out of sentences and charts


def test_answers_split_into_their_first_sentences_and_the_rest() -> None:
    answer = "11 moves between 4 frameworks. Weight transfer kept every label (e.g. all). lenet5 flipped 0.61 %."
    assert split_answer(answer) == ("11 moves between 4 frameworks. Weight transfer kept every label (e.g. all).",
                                    "lenet5 flipped 0.61 %.")
    assert split_answer("One sentence only.") == ("One sentence only.", "")


def test_each_section_opens_with_its_headline_and_folds_the_rest(study_run: dict, study_rows: list[dict]) -> None:
    document = build_document(study_run, study_rows)
    page = render_document(document)
    for section in document.sections:
        opened = page[page.index(f'<section id="{section.id}"'):]
        opened = opened[:opened.index("</section>")]
        assert f'<p class="answer">{escape(section.headline)}</p>' in opened
        if section.answer_detail:
            assert f'<p class="rest-of-answer">{escape(section.answer_detail)}</p>' in opened.split("<details", 1)[1]
