"""`dlcompat check` end to end on each input format (the tiny models of conftest.py, real CIFAR-10 images): the file
runs in its own runtime as the source, its routes are compared with it, and the floor says what it was made of."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from tests.test_cli_localize import dlcompat


@pytest.fixture(scope="module")
def images(cifar, tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "cifar.npz"
    np.savez(path, x=cifar[0], y=cifar[1])
    return path


def _check(model, images, runtimes, out):
    code, _, err = dlcompat("check", str(model), "--images", str(images), "--runtimes", runtimes,
                            "--calibration-images", "8", "--out", str(out), "--quiet")
    assert code == 0, err
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("select j.kind, m.target, m.variant, m.metric, m.value, m.method from measurements m "
                          "join jobs j on j.key = m.job_key").fetchall()
    return [(k, t, v, m, value, json.loads(method or "{}")) for k, t, v, m, value, method in rows]


def _floor(rows):
    return next(method for _, _, _, metric, _, method in rows if metric == "source_noise_floor")


def _verdicts(rows):
    return {(t, v): method["verdict"] for _, t, v, metric, _, method in rows if metric == "output_noise_ratio"}


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_a_pytorch_file_is_judged_against_its_float64_execution(model_files, images, tmp_path, fmt):
    rows = _check(getattr(model_files, fmt), images, "onnxruntime", tmp_path / "out")
    assert _floor(rows)["reference"].startswith("the file executed in float64")
    assert "oneDNN off" in json.dumps(_floor(rows)["executions"])
    source = [r for r in rows if r[0] == "evaluate" and r[1] == "pytorch" and r[3] == "accuracy"]
    assert len(source) == 1 and 0.0 <= source[0][4] <= 1.0
    verdicts = _verdicts(rows)
    assert verdicts[("onnxruntime", "torch.onnx (torchscript)")] == "within noise", verdicts


def test_an_onnx_file_is_its_own_reference_in_onnx_runtime_and_moves_into_pytorch(model_files, images, tmp_path):
    rows = _check(model_files.onnx, images, "onnxruntime,onnx2torch", tmp_path / "out")
    floor = _floor(rows)
    assert "has no float64 execution here" in floor["reference"]
    assert "graph optimisations off" in json.dumps(floor["executions"])
    assert _verdicts(rows) == {("onnx2torch", "onnx2torch"): "within noise"}
    assert [r for r in rows if r[0] == "evaluate" and r[1] == "onnx" and r[3] == "accuracy"]


def test_a_tflite_file_runs_in_litert_and_says_where_it_cannot_go(model_files, images, tmp_path):
    rows = _check(model_files.tflite, images, "litert,onnxruntime", tmp_path / "out")
    assert "no XNNPACK" in json.dumps(_floor(rows)["executions"])
    assert [r for r in rows if r[0] == "evaluate" and r[1] == "tflite" and r[3] == "accuracy"]
    report = next((tmp_path / "out").glob("reports/*/report.md")).read_text()
    assert "no converter path from tflite to onnx" in report
