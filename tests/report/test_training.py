"""Training across frameworks: seed statistics, pairwise verdicts, curves and reproducibility from tidy rows."""

from __future__ import annotations

import pytest

from dlcompat.report.document import build_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.sections.training import (
    framework_accuracy_table,
    framework_verdict_table,
    learning_curves_chart,
    training_verdict_answer,
)


def _row(metric, value, framework, seed=0, target=None, kind="evaluate", method=None):
    return {"run": "r", "job": f"{framework}{seed}{metric}", "kind": kind, "dataset": "digits", "model": "lenet5",
            "framework": framework, "seed": seed, "target": target or framework, "variant": "",
            "metric": metric, "value": value, "unit": "", "status": "ok", "error": "", "artifact": "",
            "method": method or {}}


def rows():
    out = []
    for seed, (a, b, c) in enumerate([(0.95, 0.80, 0.951), (0.96, 0.81, 0.949), (0.955, 0.79, 0.956)]):
        out += [_row("accuracy", a, "pytorch", seed), _row("accuracy", b, "jax", seed),
                _row("accuracy", c, "tensorflow", seed)]
        for epoch in (1, 2):
            out.append(_row("epoch_train_loss", 1.0 / epoch, "pytorch", seed, kind="train", method={"epoch": epoch}))
    out += [_row("bit_reproducible", 1.0, "pytorch", kind="reproduce"),
            _row("bit_reproducible", 0.0, "jax", kind="reproduce"),
            _row("reproduce_max_weight_diff", 3e-7, "jax", kind="reproduce")]
    return normalize_rows(out)


def test_accuracy_over_seeds_and_reproducibility():
    table = {r["framework"].text: r for r in framework_accuracy_table(rows()).rows}
    assert table["PyTorch"]["seeds"].text == "3"
    assert table["PyTorch"]["accuracy"].sort == 0.955
    assert "–" in table["PyTorch"]["ci"].text
    assert table["PyTorch"]["reproducible"].text == "yes"
    assert table["JAX"]["reproducible"].text.startswith("no")


def test_pairwise_verdicts_separate_real_gaps_from_noise():
    verdicts = {(r["a"].text, r["b"].text): r["verdict"].text for r in framework_verdict_table(rows()).rows}
    assert any("differs beyond seed variance" in v for k, v in verdicts.items() if "JAX" in k)
    assert "within seed variance" in verdicts[("PyTorch", "TensorFlow")]
    assert "differ beyond seed variance" in training_verdict_answer(rows())


def test_learning_curves_and_the_training_section():
    chart = learning_curves_chart(rows())
    assert chart["data"][0]["x"] == [1, 2] and chart["data"][0]["y"] == [1.0, 0.5]
    section = build_document({"id": "r", "name": "t"}, rows()).section("training")
    assert [c.id for c in section.charts] == ["framework-accuracy", "learning-curves"]
    bars = {trace["name"]: trace for trace in section.charts[0].figure["data"]}
    assert set(bars) == {"PyTorch", "JAX", "TensorFlow"}
    # the mean over three seeds, its 95% CI as the error bar
    error = bars["JAX"]["error_y"]
    assert bars["JAX"]["y"] == [pytest.approx(80.0)] and 0 < error["array"][0] == error["arrayminus"][0] < 5
    assert {t.id for t in section.tables} >= {"framework-accuracy", "framework-verdicts"}
