"""The runner end to end on real digits: every cell measured, a re-run does no work, failures are findings."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.runner import run_study

SMALL = """
name = "small"
models = ["lenet1", "lenet5"]
[data]
limit_train = 300
limit_test = 100

[train]
epochs = 2
[latency]
warmup = 2
min_repeats = 5
min_time_s = 0.0
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = run_study(parse_config(SMALL), out, executor="local", jobs=2)
    return out, summary


def test_every_cell_is_measured(finished):
    out, summary = finished
    assert summary.failed == 0 and summary.skipped == 0 and summary.ok == summary.total == 17
    rows = ResultStore(database_url(out)).rows(summary.run_id)
    metrics = {(r["model"], r["target"], r["metric"]) for r in rows}
    for model in ("lenet1", "lenet5"):
        for target in ("pytorch", "onnxruntime"):
            for metric in ("accuracy", "model_size", "load_time", "latency_p50", "peak_rss"):
                assert (model, target, metric) in metrics
        for metric in ("train_time", "train_time_per_epoch"):
            assert (model, "pytorch", metric) in metrics
        for metric in ("label_flips", "label_flip_rate", "max_abs_logit_diff", "mean_abs_logit_diff"):
            assert (model, "onnxruntime", metric) in metrics
    latency = next(r for r in rows if r["metric"] == "latency_p50" and r["target"] == "onnxruntime")
    assert latency["method"]["api"] == "InferenceSession.run" and latency["method"]["batch_size"] == 1
    assert latency["method"]["warmup"] == 2 and latency["method"]["repeats"] >= 5


def test_label_flips_recompute_from_the_stored_logits_with_numpy(finished):
    out, summary = finished
    rows = ResultStore(database_url(out)).rows(summary.run_id)
    store = ArtifactStore(out / "artifacts")
    for row in rows:
        if row["metric"] == "label_flips":
            source = np.load(store.path(row["method"]["source_logits"]))
            target = np.load(store.path(row["artifact"]))
            assert int((source.argmax(1) != target.argmax(1)).sum()) == row["value"]
            assert compare_logits(source, target).max_abs_logit_diff < 1e-3


def test_a_second_run_does_no_work(finished):
    out, first = finished
    again = run_study(parse_config(SMALL), out, executor="local", jobs=2)
    assert again.run_id == first.run_id
    assert again.ran == 0 and again.cached == again.total
    assert len(ResultStore(database_url(out)).rows(first.run_id)) == len(
        ResultStore(database_url(out)).rows(first.run_id))


def test_inline_executor_gives_the_same_keys_and_accuracies(finished, tmp_path):
    out, first = finished
    inline = run_study(parse_config(SMALL), tmp_path, executor="inline")
    assert inline.run_id == first.run_id

    def accuracies(folder, run):
        return {(r["model"], r["target"]): r["value"] for r in ResultStore(database_url(folder)).rows(run)
                if r["metric"] == "accuracy"}

    assert accuracies(tmp_path, inline.run_id) == accuracies(out, first.run_id)


def test_a_failing_job_is_a_finding_and_its_dependents_are_skipped(tmp_path, monkeypatch):
    from dlcompat.frameworks import pytorch

    def broken_export(self, model, spec, fmt, path, variant=""):
        raise RuntimeError("Unsupported op: Frobnicate (deliberately broken exporter)")

    monkeypatch.setattr(pytorch.PyTorchAdapter, "export", broken_export)
    summary = run_study(parse_config(SMALL.replace('["lenet1", "lenet5"]', '["lenet1"]')), tmp_path, executor="inline")
    assert summary.failed == 1 and summary.skipped == 3  # ORT evaluation, comparison, localisation
    rows = ResultStore(database_url(tmp_path)).rows(summary.run_id)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["metric"] == "convert"
    assert "Unsupported op: Frobnicate" in failed[0]["error"]
    assert failed[0]["variant"] == "torch.onnx (dynamo)"
