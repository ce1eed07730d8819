"""The report's localisation section, the `diverged` findings and their groups, on rows as a real study stores them:
the study's own `noise_floor` and `localize` jobs run on LeNet-5 trained on real MNIST and exported to ONNX (an
honest export, and one whose conv2 weights were scaled: the fixture of tests/findings/test_localize_job.py), their
measurements stored as the runner stores them, the localisation JSON under the run's artifact root."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest

from dlcompat.report.build import write_report
from dlcompat.report.document import build_document
from dlcompat.report.finding_groups import group_findings, ordered_groups
from dlcompat.report.findings import findings
from dlcompat.report.markdown import render_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.sections import section_of
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.jobs import localize, noise_floor
from dlcompat.study.jobs.base import JobContext
from tests.findings.artifacts import edited_onnx
from tests.findings.conftest import torch_lenet5  # noqa: F401 (a fixture)
from tests.findings.test_hop import scale_conv_channel
from tests.findings.test_localize_job import _inputs

from .conftest import RUN_ID, build_run
from .helpers import ALL_VISIBLE_CHARTS_DRAWN, CHROMIUM_ARGS, PAGE_HEIGHT, figures, parse_page
from .quick_study import build_quick_study_rows, build_quick_study_run

IMAGES = 16
HONEST, FAULTY = "torch.onnx (dynamo)", "torch.onnx (torchscript)"


def _stored(ctx: JobContext) -> list[dict[str, Any]]:
    """A job's measurements as the result store hands them to the report."""
    return [{**m.to_dict(), "run": RUN_ID, "job": f"localize {m.variant}", "kind": ctx.kind} for m in ctx.measurements]


@pytest.fixture(scope="module")
def localised(torch_lenet5, mnist_small, tmp_path_factory) -> tuple[list[dict[str, Any]], Path]:  # noqa: F811
    """The `localize` rows of an honest and a faulty (conv2 weights scaled by 1.2) ONNX export, and the artifact
    root that holds their localisation JSON."""
    tmp_path = tmp_path_factory.mktemp("localised")
    store = ArtifactStore(tmp_path / "artifacts")
    inputs = _inputs(store, torch_lenet5, mnist_small, tmp_path)
    cell = {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0}
    floor = JobContext("noise_floor", {"cell": {**cell, "target": "pytorch"}, "images": IMAGES}, inputs, store)
    noise_floor.run(floor)
    rows = []
    for variant, path in ((HONEST, torch_lenet5.path),
                          (FAULTY, edited_onnx(torch_lenet5, tmp_path, scale_conv_channel(1, 1.2)))):
        copy_path = tmp_path / "copy.onnx"  # put_file moves its file into the store
        shutil.copyfile(path, copy_path)
        target = {"artifact": store.put_file(copy_path, ".onnx"), "format": "onnx", "input_layout": "NCHW"}
        ctx = JobContext("localize", {"cell": {**cell, "target": "onnx", "variant": variant}, "images": IMAGES},
                         {**inputs, "floor": floor.outputs, "target": target}, store)
        localize.run(ctx)
        rows += _stored(ctx)
    return rows, tmp_path / "artifacts"


def _ratio(text: str) -> float:
    """`182,275x (conv2, rmse)` -> 182275.0"""
    return float(text.split("x")[0].replace(",", ""))


def _run(root: Path | None) -> dict[str, Any]:
    return {**build_run(), **({"artifacts": str(root)} if root else {})}


def test_the_section_opens_with_its_answer_and_leads_with_the_table(localised) -> None:
    rows, root = localised
    section = build_document(_run(root), rows).section("localisation")
    assert section.headline == ("1 of 2 derived models beyond their noise floor: first divergent layer and fault "
                                "type in the table.")
    assert "lenet5 · PyTorch → torch.onnx (torchscript) · seed 0: from conv2 (weights)." in section.answer
    assert "k = 2.5" in section.answer
    assert section.lead is section.tables[0]
    records = {r["artifact"]: r for r in section.tables[0].records()}
    faulty = records["lenet5 · PyTorch → torch.onnx (torchscript) · seed 0"]
    assert (faulty["verdict"], faulty["first divergent layer"], faulty["fault type"]) == (
        "exceeds noise", "conv2 (convolution)", "weights")
    assert _ratio(faulty["max error / floor"]) > 2.5
    honest = records["lenet5 · PyTorch → torch.onnx (dynamo) · seed 0"]
    assert honest["verdict"] == "within noise" and _ratio(honest["max error / floor"]) <= 2.5


def test_the_profile_chart_shows_each_layer_over_its_floor_in_graph_order_with_the_k_line(localised) -> None:
    rows, root = localised
    section = build_document(_run(root), rows).section("localisation")
    (chart,) = section.charts
    figure = chart.figure
    go.Figure(data=figure["data"], layout=figure["layout"])  # a valid plotly spec
    (trace,) = figure["data"]  # only the hop beyond noise
    assert trace["name"] == "lenet5 · PyTorch → torch.onnx (torchscript) · seed 0"
    assert trace["x"][:4] == ["conv1", "relu1", "pool1", "conv2"]
    assert trace["y"][trace["x"].index("conv2")] > 2.5 >= max(y for y in trace["y"][:3] if y is not None)
    assert figure["layout"]["yaxis"]["type"] == "log"
    assert figure["layout"]["shapes"][0]["y0"] == 2.5 and figure["config"]["displaylogo"] is False
    layers = section.tables[1].records()  # the same figures for Markdown
    assert [r["layer"] for r in layers][:4] == trace["x"][:4]


def test_without_the_artifacts_the_table_stays_and_the_section_says_why(localised) -> None:
    rows, _ = localised
    section = build_document(_run(None), rows).section("localisation")
    assert not section.charts and len(section.tables) == 1
    assert "not under this report's artifact root" in section.answer


def test_a_hop_beyond_noise_is_a_diverged_finding_grouped_by_cause(localised) -> None:
    rows, _ = localised
    diverged = [f for f in findings(normalize_rows(rows)) if f.status == "diverged"]
    assert [f.variant for f in diverged] == [FAULTY]  # no label flips needed; the honest export is no finding
    assert diverged[0].error.startswith("Beyond its measured noise floor from conv2 (convolution), fault type "
                                        "weights; output ")
    # the same fault in another model's convolution is the same cause; another fault type is another
    other_model = copy.deepcopy([r for r in rows if r["variant"] == FAULTY])
    for r in other_model:
        r.update(model="lenet1", job="localize lenet1")
    other_fault = copy.deepcopy(other_model)
    for r in other_fault:
        r.update(seed=1, job="localize seed 1")
        r["method"]["fault_type"] = "layout/transpose"
    groups = ordered_groups(group_findings(normalize_rows([*rows, *other_model, *other_fault])))
    assert [(g.status, g.tool, g.pattern, len(g.members)) for g in groups] == [
        ("diverged", FAULTY, "beyond its noise floor from a convolution layer: weights", 2),
        ("diverged", FAULTY, "beyond its noise floor from a convolution layer: layout/transpose", 1)]
    assert all(row["method"]["localisation"] in " ".join(groups[0].artifacts) for row in rows[1:]
               if row["metric"] == "output_noise_ratio")


def test_localisation_rows_belong_to_the_section_not_to_other_measurements(localised) -> None:
    rows, root = localised
    assert {section_of(r) for r in normalize_rows(rows)} == {"localisation"}
    document = build_document(_run(root), rows)
    assert "other" not in [s.id for s in document.sections]
    markdown = render_document(document)
    assert "Per-layer error over the floor" in markdown and "conv2" in markdown


def quick_study_localisations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A localisation row for every ONNX / .tflite artifact of the quick study (quick_study.py), copied from the real
    rows: the faulty one for every fourth artifact, the honest one for the others."""
    honest, faulty = (next(r for r in rows if r["variant"] == v) for v in (HONEST, FAULTY))
    out = []
    converted = {(r["model"], r["framework"], r["target"], r["variant"]) for r in build_quick_study_rows()
                 if r["kind"] == "convert" and r["target"] in ("onnx", "litert") and r["status"] == "ok"}
    for number, (model, framework, target, variant) in enumerate(sorted(converted)):
        out.append({**copy.deepcopy(faulty if number % 4 == 0 else honest), "dataset": "digits", "model": model,
                    "framework": framework, "target": "onnx" if target == "onnx" else "tflite", "variant": variant,
                    "job": f"localize {model} {framework} {variant}"})
    return out


@pytest.fixture(scope="module")
def quick_report(localised, tmp_path_factory) -> Path:
    rows, root = localised
    run = {**build_quick_study_run(), "artifacts": str(root)}
    html_path, _ = write_report(run, [*build_quick_study_rows(), *quick_study_localisations(rows)],
                                tmp_path_factory.mktemp("quick"))
    return html_path


def test_the_quick_study_report_with_localisations_keeps_its_budget(quick_report: Path) -> None:
    """The quick study's report (tests/report/test_budgets.py) with a localisation of each of its ONNX and .tflite
    artifacts: still at most 2 MB, the section leads with one answer and one table, every fold closed, its charts
    valid figures with a log y axis."""
    page = quick_report.read_text(encoding="utf-8")
    assert quick_report.stat().st_size <= 2_000_000
    assert not any(tag == "details" and "open" in attrs for tag, attrs in parse_page(page).elements)
    section = page.split('<section id="localisation"')[1].split("<section ")[0]
    lead = section.split("<details", 1)[0]
    assert lead.count('<p class="answer') == 1 and lead.count("<table") == 1 and lead.count("<figure") == 0
    assert any(spec["layout"].get("yaxis", {}).get("type") == "log" for spec in figures(page).values())


def test_in_chromium_the_quick_report_with_localisations_is_at_most_25_screens(quick_report: Path,
                                                                                chromium: str) -> None:
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(quick_report.as_uri(), wait_until="load")
            page.wait_for_function(ALL_VISIBLE_CHARTS_DRAWN, timeout=30_000)
            height = page.evaluate(PAGE_HEIGHT)
        finally:
            browser.close()
    assert height <= 25 * 900, f"{height / 900:.1f} screens"
