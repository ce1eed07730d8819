"""The Migration section: moves joined from their rows, heatmaps per route with failures marked, tables."""

from __future__ import annotations

import plotly.graph_objects as go

from dlcompat.report.document import build_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.sections.migration import NO_CONVERTER, moves

from .conftest import CONVERSION_ERROR, DYNAMO, NO_CONVERTER_INTO_JAX, ONNX2TF, TORCHSCRIPT


def test_moves_join_evaluate_compare_and_their_conversion_steps(study_rows: list[dict]) -> None:
    found = {(m.key[1], m.source, m.target, m.variant): m for m in moves(normalize_rows(study_rows))}
    converted = found[("lenet5", "pytorch", "tensorflow", ONNX2TF)]
    assert converted.chain == DYNAMO and converted.landing == "onnx2tf"
    assert converted.value("label_flips") == 2 and converted.conversion_time == 2.6
    assert converted.converted_size == 251_877 and converted.tools == ["torch.onnx.export 2.13.0"]
    weights = found[("lenet1", "pytorch", "theano", "weight transfer")]
    assert weights.is_weight_transfer and weights.status == "ok" and weights.value("label_flips") == 0
    jax = found[("lenet1", "pytorch", "jax", "converter")]
    assert jax.chain == NO_CONVERTER and jax.status == "unavailable"
    # the failed TorchScript export stopped the move into TensorFlow through onnx2tf: recovered, marked failed
    stopped = found[("lenet5", "pytorch", "tensorflow", f"{TORCHSCRIPT} → onnx2tf")]
    assert stopped.status == "failed" and stopped.problem["error"] == CONVERSION_ERROR
    assert ("lenet5", "pytorch", "pytorch", f"{TORCHSCRIPT} → onnx2torch") not in found  # never into itself


def test_a_heatmap_per_model_and_route_with_failures_marked_and_errors_on_hover(study_run: dict,
                                                                                 study_rows: list[dict]) -> None:
    section = build_document(study_run, study_rows).section("migration")
    charts = {c.id: c for c in section.charts}
    assert set(charts) == {f"migration-{route}-digits-{model}" for route in ("weights", "converters")
                           for model in ("lenet1", "lenet5")}
    weights = charts["migration-weights-digits-lenet1"].figure
    flips, marks = weights["data"]
    assert flips["y"] == ["PyTorch", "TensorFlow"] and flips["x"] == ["PyTorch", "TensorFlow", "Theano"]
    assert flips["z"] == [[None, 0.0, 0.0], [0.0, None, None]]
    assert flips["text"][0] == ["source", "0", "0"] and marks["z"][0][0] == 0.5  # the source itself
    converters = charts["migration-converters-digits-lenet5"].figure
    flips, marks = converters["data"]
    rows = flips["y"]
    assert rows == [f"PyTorch · {DYNAMO}", f"PyTorch · {TORCHSCRIPT}"]
    failed = rows.index(f"PyTorch · {TORCHSCRIPT}")
    column = {name: i for i, name in enumerate(flips["x"])}
    assert flips["text"][failed][column["TensorFlow"]] == "failed" and marks["z"][failed][column["TensorFlow"]] == 1.0
    assert "UnsupportedOperatorError" in flips["hovertext"][failed][column["TensorFlow"]]
    # no converter into JAX: grey in every chain's row, the reason on hover
    assert [marks["z"][i][column["JAX"]] for i in range(2)] == [0.0, 0.0]
    assert NO_CONVERTER_INTO_JAX in flips["hovertext"][0][column["JAX"]]
    assert flips["z"][rows.index(f"PyTorch · {DYNAMO}")][column["TensorFlow"]] == 2.0
    for chart in charts.values():
        go.Figure(data=chart.figure["data"], layout=chart.figure["layout"])  # a valid plotly spec


def test_the_tables_list_every_move_and_the_failures_in_full(study_run: dict, study_rows: list[dict]) -> None:
    section = build_document(study_run, study_rows).section("migration")
    tables = {t.id: t for t in section.tables}
    moved = {(r["model"], r["source"], r["target"], r["route"]): r for r in tables["migration-moves"].records()}
    flipped = moved[("lenet5", "PyTorch", "TensorFlow", ONNX2TF)]
    assert flipped["label flips (rate)"] == "2 (0.56 %)" and flipped["accuracy change"] == "-0.28 pp"
    assert flipped["tools (versions)"] == "torch.onnx.export 2.13.0" and flipped["converted size"] == "252 kB"
    failures = tables["migration-failures"].records()
    assert {(r["target"], r["status"]) for r in failures} == {("TensorFlow", "failed"), ("JAX", "unavailable")}
    assert any(r["error"] == CONVERSION_ERROR for r in failures)  # in full, traceback and all
    assert "Converters changed labels in 1 of 2 compared moves" in section.answer
    assert "No converter exists into JAX; only weight transfer reaches it." in section.answer


def test_a_run_without_migration_says_what_to_configure(run: dict, rows: list[dict]) -> None:
    section = build_document(run, rows).section("migration")
    assert not section.has_data and 'migration = ["weights", "converters"]' in section.answer
