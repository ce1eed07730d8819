"""A reproducer folder for ONNX Runtime: its layout, its pins, a repro.py of at most 40 lines that imports no dlcompat
and exits 1 while the problem is present and 0 when it is not (run here with this interpreter's ONNX Runtime)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlcompat.findings.reproducer import MAX_REPRO_LINES, Problem, error_pattern, read_problem, write_reproducer
from dlcompat.findings.tools import TOOLS

X = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)


def relu_model() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def problem(**changes) -> Problem:
    versions = {name: metadata.version(name) for name in ("onnxruntime", "onnx", "numpy")}
    fields = {"key": "relu", "tool": "onnxruntime", "kind": "mismatch", "title": "onnxruntime: wrong Relu",
              "happened": "output 0 differs", "expected": "max(x, 0)", "tolerance": [1e-6], "versions": versions,
              "op_types": ["Relu"], "minimal": True, "figures": {"rmse": 1.0}}
    return Problem(**{**fields, **changes})


def run(folder) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "repro.py"], cwd=folder, capture_output=True, text=True, timeout=120)


def test_folder_layout_and_pins(tmp_path):
    folder = write_reproducer(tmp_path / "r", problem(python="3.12"), TOOLS["onnxruntime"], relu_model(), [X],
                              [np.maximum(X, 0)])
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert names == {"repro.py", "model.onnx", "test_data_set_0/input_0.pb", "test_data_set_0/output_0.pb",
                     "requirements.txt", ".python-version", "ISSUE.md", "finding.json"}
    source = (folder / "repro.py").read_text()
    assert source.count("\n") <= MAX_REPRO_LINES and "dlcompat" not in source
    assert f"onnxruntime=={metadata.version('onnxruntime')}" in (folder / "requirements.txt").read_text().split()
    assert (folder / ".python-version").read_text().strip() == "3.12"
    assert "rmse 1" in (folder / "ISSUE.md").read_text() and read_problem(folder).op_types == ["Relu"]


@pytest.mark.parametrize(("expected", "code"), [(np.maximum(X, 0), 0), (np.maximum(X, 0) + 0.5, 1)],
                         ids=["fixed", "present"])
def test_numeric_repro_exits_by_the_tolerance(tmp_path, expected, code):
    folder = write_reproducer(tmp_path / "r", problem(), TOOLS["onnxruntime"], relu_model(), [X], [expected])
    done = run(folder)
    assert done.returncode == code, done.stdout + done.stderr
    assert "rmse" in done.stdout


def test_error_repro_matches_its_pattern(tmp_path):
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="org.example")], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.example", 1)])
    error = "Fail: [ONNXRuntimeError] : 1 : FAIL : Load model failed: Fatal error: org.example:NoSuchOp(-1) " \
            "is not a registered function/op"
    pattern = error_pattern(error)
    assert re.search(pattern, error) and "NoSuchOp" in pattern and not re.search(pattern, error.replace("NoSuch", "A"))
    folder = write_reproducer(tmp_path / "r", problem(kind="error", pattern="is not a registered function/op"),
                              TOOLS["onnxruntime"], model, [X], [X])
    assert run(folder).returncode == 1
    other = write_reproducer(tmp_path / "o", problem(kind="error", pattern="an error ONNX Runtime never gives"),
                             TOOLS["onnxruntime"], model, [X], [X])
    assert run(other).returncode == 2  # another error: cannot tell


def test_every_tool_fits_in_forty_lines():
    from dlcompat.findings.reproducer import repro_source

    for tool in TOOLS.values():
        assert repro_source(problem(tool=tool.name), tool).count("\n") <= MAX_REPRO_LINES
