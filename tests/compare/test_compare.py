"""`dlcompat compare`: matching two runs' measurements, the noise of each, the labels, and the command on real runs.

The unit tests build small row sets in the shape the study's jobs write (study/jobs/): a native cell's
target is its framework, a conversion's the format it makes, an evaluation's the runtime; a job that
fails as a whole leaves one row whose metric is its kind. The end-to-end test runs two tiny real
studies (digits, LeNet-1, PyTorch, one epoch, seeds 0 and 1, the second also deployed to ONNX Runtime)
into two folders and compares them through the command line.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from dlcompat.compare.changes import compare_runs
from dlcompat.compare.document import HTML_NAME, MARKDOWN_NAME, build_comparison_document, write_comparison
from dlcompat.compare.noise import count_test_p, newcombe_interval, rule_for
from dlcompat.report.markdown import render_document as render_markdown

from ..report.helpers import markdown_tables

DYNAMO = "torch.onnx (dynamo)"
RUN_A = {"id": "aaaa1111", "name": "before", "environment": {"packages": {"torch": "2.12.0"}, "seeds": [0]}}
RUN_B = {"id": "bbbb2222", "name": "after", "environment": {"packages": {"torch": "2.13.0"}, "seeds": [0]}}


def row(metric: str, value: float | None, *, unit: str = "", kind: str = "evaluate", target: str = "pytorch",
        variant: str = "", seed: int | None = 0, status: str = "ok", error: str = "", model: str = "lenet1",
        **method: Any) -> dict[str, Any]:
    return {"run": "", "job": f"{kind}-{target}-{seed}", "kind": kind, "dataset": "digits", "model": model,
            "framework": "pytorch", "seed": seed, "target": target, "variant": variant, "metric": metric,
            "value": value, "unit": unit, "status": status, "error": error, "artifact": "", "method": method}


def accuracy(value: float, images: int = 1000, **kw: Any) -> dict[str, Any]:
    return row("accuracy", value, unit="fraction", images=images, **kw)


def latency(p50: float, low: float, high: float, batch_size: int = 1, **kw: Any) -> list[dict[str, Any]]:
    method = {"batch_size": batch_size, "ci_level": 0.95, "repeats": 100}
    return [row("latency_p50", p50, unit="ms", **method, **kw),
            row("latency_median_ci_low", low, unit="ms", **method, **kw),
            row("latency_median_ci_high", high, unit="ms", **method, **kw),
            row("latency_p50_per_image", p50 / batch_size, unit="ms", **method, **kw)]


def only(comparison: Any, metric: str) -> Any:
    found = [c for c in comparison.changes if c.metric == metric]
    assert len(found) == 1, [c.identity for c in comparison.changes]
    return found[0]


# -- the statistics -------------------------------------------------------------------------------------


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat. Med. 17:873, table II: 56/70 against 48/80, hybrid score interval 0.0524 to 0.3339
    low, high = newcombe_interval(48, 80, 56, 70)
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)


def test_count_test_is_the_exact_binomial_test_of_two_counts():
    assert count_test_p(0, 1000, 0, 1000) == 1.0
    assert count_test_p(3, 1000, 5, 1000) == pytest.approx(0.7266, abs=1e-4)  # 2·P(X ≤ 3), X ~ Bin(8, 1/2)
    assert count_test_p(0, 1000, 30, 1000) < 1e-8


# -- matching ---------------------------------------------------------------------------------------------


def test_a_run_compared_with_itself_has_no_difference():
    rows = [accuracy(0.9), *latency(1.0, 0.95, 1.05), row("model_size", 16000.0, unit="bytes")]
    comparison = compare_runs(RUN_A, rows, RUN_A, rows)
    assert not comparison.has_differences
    counts = comparison.counts()
    assert counts["unchanged"] == counts["compared"] == 4  # the CI bounds are noise, not measurements
    assert counts["beyond noise"] == counts["within noise"] == counts["appeared"] == counts["status changed"] == 0


def test_measurements_match_by_identity_and_by_seed_when_the_seeds_agree():
    a = [accuracy(0.90, seed=0), accuracy(0.80, seed=1), accuracy(0.90, target="onnxruntime", variant=DYNAMO)]
    b = [accuracy(0.90, seed=0), accuracy(0.95, seed=1), accuracy(0.90, target="onnxruntime", variant=DYNAMO)]
    comparison = compare_runs(RUN_A, a, RUN_B, b)
    assert not comparison.pooled
    changed = comparison.of_kind("value")
    assert [c.identity for c in changed] == [("digits", "lenet1", "pytorch", "pytorch", "", 1, "accuracy")]
    assert changed[0].delta == pytest.approx(0.15) and changed[0].exceeds


def test_different_seeds_are_pooled_and_compared_by_their_mean():
    a = [accuracy(0.80, seed=0)]
    b = [accuracy(0.84, seed=1), accuracy(0.86, seed=2)]
    comparison = compare_runs(RUN_A, a, RUN_B, b)
    assert comparison.pooled
    change = only(comparison, "accuracy")
    assert change.identity[5] is None and change.delta == pytest.approx(0.05)
    # one seed against two: no spread on A's side, so the two-proportion interval on 1000 vs 2000 images
    assert "Newcombe" in change.noise.method and "1,000 vs 2,000 images" in change.noise.text
    assert change.exceeds


def test_several_seeds_on_both_sides_use_the_seed_spread():
    a = [accuracy(v, seed=s) for s, v in enumerate((0.90, 0.92, 0.91))]
    near = [accuracy(v, seed=s + 3) for s, v in enumerate((0.91, 0.905, 0.925))]
    far = [accuracy(v, seed=s + 3) for s, v in enumerate((0.97, 0.98, 0.975))]
    within = only(compare_runs(RUN_A, a, RUN_B, near), "accuracy")
    beyond = only(compare_runs(RUN_A, a, RUN_B, far), "accuracy")
    assert "Welch" in within.noise.method and within.label == "within noise"
    assert "Welch" in beyond.noise.method and beyond.label == "exceeds noise"
    # the same seeds in both runs match seed by seed, unless asked to pool
    pooled = compare_runs(RUN_A, a, RUN_B, [accuracy(v, seed=s) for s, v in enumerate((0.97, 0.98, 0.975))],
                          pool_seeds=True)
    assert pooled.pooled and "Welch" in only(pooled, "accuracy").noise.method


def test_accuracy_noise_is_the_two_proportion_interval_on_the_images():
    small = only(compare_runs(RUN_A, [accuracy(0.900, images=200)], RUN_B, [accuracy(0.905, images=200)]),
                 "accuracy")
    large = only(compare_runs(RUN_A, [accuracy(0.50)], RUN_B, [accuracy(0.90)]), "accuracy")
    assert small.label == "within noise" and large.label == "exceeds noise"
    assert "CI [" in small.noise.text and "200 vs 200 images" in small.noise.text


def test_a_rate_without_its_image_count_falls_back_to_a_stated_tolerance():
    a = [row("val_accuracy", 0.90, unit="fraction", kind="train")]
    b = [row("val_accuracy", 0.93, unit="fraction", kind="train")]
    change = only(compare_runs(RUN_A, a, RUN_B, b), "val_accuracy")
    assert change.noise.text == "±2.00 pp" and "not recorded" in change.noise.method and change.exceeds


def test_latency_noise_is_each_runs_ci_of_the_median():
    base = latency(1.00, 0.98, 1.02, batch_size=4)
    overlapping = compare_runs(RUN_A, base, RUN_B, latency(1.01, 0.99, 1.03, batch_size=4))
    disjoint = compare_runs(RUN_A, base, RUN_B, latency(1.20, 1.18, 1.22, batch_size=4))
    assert only(overlapping, "latency_p50").label == "within noise"
    assert only(disjoint, "latency_p50").label == "exceeds noise"
    assert only(disjoint, "latency_p50").noise.text == "95 % CIs [0.98, 1.02] vs [1.18, 1.22] ms"
    per_image = only(disjoint, "latency_p50_per_image")  # the per-call interval divided by the batch
    assert per_image.noise.text == "95 % CIs [0.245, 0.255] vs [0.295, 0.305] ms" and per_image.exceeds
    assert not any(c.metric.startswith("latency_median_ci") for c in disjoint.changes)


def test_disjoint_latency_cis_within_the_run_to_run_floor_are_noise():
    """5% apart with narrow intervals: what two measurements in a row show on a VM, not a change."""
    change = only(compare_runs(RUN_A, latency(1.00, 0.999, 1.001), RUN_B, latency(1.05, 1.049, 1.051)), "latency_p50")
    assert change.label == "within noise" and "run-to-run floor" in change.noise.method


def test_label_flips_use_the_binomial_test():
    def flips(count: float) -> list[dict[str, Any]]:
        return [row("label_flips", count, unit="count", kind="compare", target="onnxruntime", variant=DYNAMO,
                    images=1000)]

    assert only(compare_runs(RUN_A, flips(3), RUN_B, flips(5)), "label_flips").label == "within noise"
    beyond = only(compare_runs(RUN_A, flips(0), RUN_B, flips(30)), "label_flips")
    assert beyond.exceeds and beyond.noise.text.startswith("0 vs 30, p = ")


def test_training_time_uses_the_spread_across_epochs():
    def train(total: float, epochs: list[float]) -> list[dict[str, Any]]:
        return [row("train_time", total, unit="s", kind="train"),
                *(row("epoch_time", t, unit="s", kind="train", epoch=i + 1) for i, t in enumerate(epochs))]

    steady = compare_runs(RUN_A, train(10.0, [3.0, 3.1, 2.9]), RUN_B, train(10.4, [3.1, 3.0, 3.2]))
    slower = compare_runs(RUN_A, train(10.0, [3.0, 3.1, 2.9]), RUN_B, train(16.0, [5.0, 5.1, 4.9]))
    assert only(steady, "train_time").label == "within noise"
    assert only(slower, "train_time").label == "exceeds noise"
    assert "epochs" in only(slower, "train_time").noise.method
    # one epoch each: the stated tolerance
    single = only(compare_runs(RUN_A, train(10.0, [10.0]), RUN_B, train(10.5, [10.5])), "train_time")
    assert single.noise.text == "±10 %" and not single.exceeds


def test_deterministic_and_round_off_figures():
    size = only(compare_runs(RUN_A, [row("model_size", 16000.0, unit="bytes")],
                             RUN_B, [row("model_size", 16004.0, unit="bytes")]), "model_size")
    assert size.exceeds and size.noise.text == "exact"

    def diff(value: float) -> list[dict[str, Any]]:
        return [row("max_abs_logit_diff", value, kind="compare", target="onnxruntime", variant=DYNAMO)]

    assert not only(compare_runs(RUN_A, diff(2e-7), RUN_B, diff(6e-7)), "max_abs_logit_diff").exceeds
    assert only(compare_runs(RUN_A, diff(2e-7), RUN_B, diff(3e-5)), "max_abs_logit_diff").exceeds
    assert only(compare_runs(RUN_A, diff(0.0), RUN_B, diff(1e-7)), "max_abs_logit_diff").exceeds


def test_a_metric_no_rule_names_gets_one_by_its_unit():
    assert rule_for("some_new_rate", "fraction") is rule_for("accuracy")
    assert rule_for("some_new_count", "count") is rule_for("label_flips")
    assert "10 %" in rule_for("some_new_figure", "").description


# -- status changes, new and missing figures ---------------------------------------------------------


ONNX_ERROR = "Traceback (most recent call last):\n  ...\nRuntimeError: opset 9 has no MaxPool with indices"


def test_a_failed_job_is_the_status_of_every_figure_it_would_have_measured():
    a = [accuracy(0.9, target="onnxruntime", variant=DYNAMO, kind="evaluate"),
         row("load_time", 0.1, unit="s", target="onnxruntime", variant=DYNAMO)]
    b = [row("evaluate", None, status="failed", error=ONNX_ERROR, target="onnxruntime", variant=DYNAMO)]
    forward = compare_runs(RUN_A, a, RUN_B, b)
    assert {(c.metric, c.kind, c.status_a, c.status_b) for c in forward.changes} == {
        ("accuracy", "status", "ok", "failed"), ("load_time", "status", "ok", "failed")}
    assert forward.status_transitions() == {"ok → failed": 2}
    backward = compare_runs(RUN_B, b, RUN_A, a)
    assert backward.status_transitions() == {"failed → ok": 2} and backward.has_differences
    # the status table names the cell once, with the error of the failing run
    findings = build_comparison_document(forward).section("findings")
    table = next(t for t in findings.tables if t.id == "status-changes")
    assert len(table.rows) == 1
    record = table.records()[0]
    assert record["run A"] == "ok" and record["run B"] == "failed" and "MaxPool" in record["error in run B"]
    assert record["measurements"] == "accuracy, load_time"


def test_the_same_failure_is_unchanged_and_a_new_error_is_listed():
    failed = row("convert", None, status="failed", error="old error", kind="convert", target="onnx", variant=DYNAMO)
    again = compare_runs(RUN_A, [failed], RUN_B, [failed])
    assert again.counts()["unchanged"] == 1 and not again.has_differences
    other = compare_runs(RUN_A, [failed], RUN_B, [{**failed, "error": "new error"}])
    assert [c.kind for c in other.changes] == ["error"] and other.has_differences


def test_missing_figures_name_the_failure_upstream():
    convert_ok = [row("conversion_time", 2.0, unit="s", kind="convert", target="onnx", variant=DYNAMO)]
    evaluated = [accuracy(0.9, target="onnxruntime", variant=DYNAMO),
                 row("label_flips", 0.0, unit="count", kind="compare", target="onnxruntime", variant=DYNAMO)]
    convert_failed = [row("convert", None, status="failed", error=ONNX_ERROR, kind="convert", target="onnx",
                          variant=DYNAMO)]
    comparison = compare_runs(RUN_A, convert_ok + evaluated, RUN_B, convert_failed)
    kinds = {c.metric: c.kind for c in comparison.changes}
    assert kinds == {"conversion_time": "status", "accuracy": "disappeared", "label_flips": "disappeared"}
    missing = [c for c in comparison.changes if c.kind == "disappeared"]
    assert all("convert failed for onnx" in c.reason and "MaxPool" in c.reason for c in missing)
    # a new cell with no failure behind it appeared plainly
    appeared = compare_runs(RUN_A, convert_ok, RUN_B, convert_ok + evaluated)
    assert {c.metric: (c.kind, c.reason) for c in appeared.changes if c.kind != "unchanged"} == {
        "accuracy": ("appeared", ""), "label_flips": ("appeared", "")}


# -- the document ----------------------------------------------------------------------------------------


def two_versions() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same study before and after an upgrade: native accuracy the same, the converted model slower,
    one conversion now failing, one new runtime."""
    a = [accuracy(0.91), row("train_time", 10.0, unit="s", kind="train"), *latency(1.0, 0.98, 1.02),
         accuracy(0.91, target="onnxruntime", variant=DYNAMO),
         *latency(0.50, 0.49, 0.51, target="onnxruntime", variant=DYNAMO),
         row("conversion_time", 2.0, unit="s", kind="convert", target="onnx", variant=DYNAMO, model="lenet5")]
    b = [accuracy(0.91), row("train_time", 10.2, unit="s", kind="train"), *latency(1.005, 0.985, 1.025),
         accuracy(0.91, target="onnxruntime", variant=DYNAMO),
         *latency(0.70, 0.69, 0.71, target="onnxruntime", variant=DYNAMO),
         row("convert", None, status="failed", error=ONNX_ERROR, kind="convert", target="onnx", variant=DYNAMO,
             model="lenet5"),
         accuracy(0.91, target="<script>alert(1)</script>", variant=DYNAMO)]
    return a, b


def test_the_document_has_the_reports_sections_with_only_what_changed():
    a, b = two_versions()
    comparison = compare_runs(RUN_A, a, RUN_B, b)
    document = build_comparison_document(comparison)
    ids = [s.id for s in document.sections]
    # the report's own sections: the native model's figures under training, the deployed one's under deployment
    assert ids == ["summary", "training", "deployment", "findings", "environment"]
    deployed = document.section("deployment").tables[0].records()
    assert [r["verdict"] for r in deployed] == ["exceeds noise", "exceeds noise"]
    assert deployed[0]["target"] == "onnxruntime" and deployed[0]["change %"] == "+40.0 %"
    assert document.section("deployment").answer.startswith("2 measurements of")
    native = document.section("training").tables[0].records()
    assert {r["metric"]: r["verdict"] for r in native} == {
        "train_time": "within noise", "latency_p50": "within noise", "latency_p50_per_image": "within noise"}
    assert "No measurement changed beyond noise" in document.section("training").answer
    environment = document.section("environment")
    packages = next(t for t in environment.tables if t.id == "environment-differences").records()
    assert packages == [{"field": "packages.torch", "run A": "2.12.0", "run B": "2.13.0"}]
    methods = next(t for t in environment.tables if t.id == "noise-methods").records()
    assert {m["metric"] for m in methods} >= {"latency_p50", "train_time", "latency_median_ci_low"}


def test_rendered_files_escape_user_strings(tmp_path):
    a, b = two_versions()
    html_path, markdown_path = write_comparison(compare_runs(RUN_A, a, RUN_B, b), tmp_path)
    assert (html_path.name, markdown_path.name) == (HTML_NAME, MARKDOWN_NAME)
    page = html_path.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page and "http://" not in page.replace("http://www.w3.org", "")
    text = markdown_path.read_text()
    assert "<script>" not in text
    tables = markdown_tables(text)
    status_rows = [r for t in tables for r in t if "failed" in r]
    assert status_rows and any("lenet5" in r for r in status_rows)


def test_markdown_lists_the_numbers_of_a_change():
    a, b = two_versions()
    text = render_markdown(build_comparison_document(compare_runs(RUN_A, a, RUN_B, b)))
    line = next(line for line in text.splitlines() if "| latency_p50 |" in line and "onnxruntime" in line)
    assert "0.5 ms" in line and "0.7 ms" in line and "+0.2 ms" in line and "exceeds noise" in line


# -- the command, on two tiny real runs ---------------------------------------------------------------------

TINY = """
name = "tiny"
models = ["lenet1"]
seeds = [{seed}]
runtimes = {runtimes}
check_reproducibility = false
[data]
limit_train = 200
limit_test = 100
[train]
epochs = 1
[latency]
warmup = 1
min_repeats = 10
min_time_s = 0.0
"""


def dlcompat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcompat.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Seed 0 in PyTorch only, in one folder; seed 1 also deployed to ONNX Runtime, in another."""
    from dlcompat.study.config import parse_config
    from dlcompat.study.runner import run_study

    root = tmp_path_factory.mktemp("compare")
    first = run_study(parse_config(TINY.format(seed=0, runtimes="[]")), root / "a", executor="inline")
    second = run_study(parse_config(TINY.format(seed=1, runtimes='["onnxruntime"]')), root / "b",
                       executor="inline")
    assert first.failed == second.failed == 0
    return root, first.run_id, second.run_id


@pytest.mark.slow
def test_compare_names_the_differences_of_two_real_runs_and_labels_them(two_runs):
    root, run_a, run_b = two_runs
    out = root / "cmp"
    result = dlcompat("compare", run_a, "latest", "--out", str(root / "a"), "--out-b", str(root / "b"),
                      "--output", str(out), "--fail-on-change")
    assert result.returncode == 1, result.stderr  # the ONNX Runtime cell is new: a difference
    assert f"run A {run_a}" in result.stderr and f"run B {run_b}" in result.stderr
    assert "pooled over seeds" in result.stderr
    assert "appeared" in result.stderr and f"compare:  {out / HTML_NAME}" in result.stdout
    text = (out / MARKDOWN_NAME).read_text()
    rows = [r for t in markdown_tables(text) for r in t]
    native_accuracy = next(r for r in rows if "accuracy" in r and "pytorch (native)" in r)
    # 100 test images each: the two-proportion interval, and a verdict that agrees with it
    noise = next(cell for cell in native_accuracy if cell.startswith("Δ 95 % CI"))
    low, high = (float(x.strip().removesuffix(" pp")) for x in noise.split("[")[1].split("]")[0].split(","))
    verdict = native_accuracy[-1]
    assert verdict == ("exceeds noise" if low > 0 or high < 0 else "within noise")
    assert "100 vs 100 images" in noise
    # every value change carries one of the two labels; the new cell is listed with its values
    labelled = [r for r in rows if r[-1] in ("exceeds noise", "within noise")]
    assert len(labelled) >= 5
    new = next(r for r in rows if "onnxruntime" in r and "ok" in r)
    assert any(cell.startswith("accuracy ") for cell in new[-2].split("; "))
    assert re.search(r"\d+ measurements appeared", text) and "seeds | 0 | 1" in text
    page = (out / HTML_NAME).read_text()
    assert "exceeds noise" in page or "within noise" in page


@pytest.mark.slow
def test_compare_of_a_run_with_itself_reports_nothing_beyond_noise(two_runs):
    root, run_a, _ = two_runs
    result = dlcompat("compare", run_a, run_a, "--out", str(root / "a"), "--fail-on-change")
    assert result.returncode == 0, result.stderr
    assert "0 changed beyond noise, 0 within noise" in result.stderr and "0 changed status" in result.stderr
    text = next((root / "a" / "reports").glob(f"compare-{run_a}-{run_a}/{MARKDOWN_NAME}")).read_text()
    rows = [r for t in markdown_tables(text) for r in t]
    assert not [r for r in rows if r[-1] in ("exceeds noise", "within noise")]
    counts = {r[0]: r[1] for r in rows if len(r) == 2}
    assert counts["unchanged"] == counts["compared"] != "0" and counts["beyond noise"] == "0"
    assert "Nothing changed beyond noise." in text and "## Findings" in text and "## Latency" not in text


def test_compare_with_an_unknown_run_or_folder_exits_2_in_one_sentence(tmp_path):
    missing = dlcompat("compare", "latest", "latest", "--out", str(tmp_path))
    assert missing.returncode == 2 and "no results database" in missing.stderr and "Traceback" not in missing.stderr


def test_non_finite_values_are_compared_exactly():
    a = [row("final_train_loss", 1.0, kind="train")]
    b = [row("final_train_loss", math.inf, kind="train")]
    change = only(compare_runs(RUN_A, a, RUN_B, b), "final_train_loss")
    assert change.exceeds and change.noise.text == "non-finite value"
