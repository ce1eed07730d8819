"""ONNX Runtime Web (wasm) as a conformance route: one page of headless Chromium runs every canary case, judged by
ONNX Runtime's measured floor; tensors of other types than float32 travel both ways; what it cannot run is an
error answer (a sequence-typed input, an operator of an unknown domain), and the page lives on for the next case."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from dlcompat.findings import canary
from dlcompat.findings.conformance import BackendCase, floors_of, judge, run_route
from dlcompat.findings.ortweb import OrtWebServer
from dlcompat.findings.routes import Answer


@pytest.fixture(scope="module")
def ortweb():
    with OrtWebServer(timeout_s=60) as server:
        yield server


def test_every_canary_passes_in_one_page(ortweb, tmp_path):
    suite = canary.write_suite(tmp_path)
    cases = []
    for name, (_model, inputs, outputs) in canary.canaries().items():
        cases.append(BackendCase(f"canary/{name}", suite / f"test_{name}" / "model.onnx", inputs, outputs))
    floors = {}
    for case in cases:  # ONNX Runtime's own rmse sets the floor, as in the conformance run
        session = ort.InferenceSession(str(case.model_path), providers=["CPUExecutionProvider"])
        floors[case.name] = floors_of(Answer(session.run(None, dict(zip(
            [i.name for i in session.get_inputs()], case.inputs, strict=True)))), case.outputs)
    verdicts, _answers = run_route(ortweb, cases, floors)
    assert [v.case for v in verdicts if v.status != "pass"] == []
    assert ortweb.versions()["onnxruntime-web"] and ortweb.versions()["chromium"]


def _model(tmp_path, node, inputs, outputs, domain_opset=()):
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), *domain_opset])
    model.ir_version = 8  # ONNX Runtime Web 1.30 reads IR versions up to 13, onnx 1.23 writes 14 by default
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_int64_and_bool_tensors_travel_both_ways(ortweb, tmp_path):
    path = _model(tmp_path, helper.make_node("Greater", ["a", "b"], ["y"]),
                  [helper.make_tensor_value_info(n, TensorProto.INT64, [5]) for n in "ab"],
                  [helper.make_tensor_value_info("y", TensorProto.BOOL, [5])])
    a, b = np.array([1, 2**40, -3, 4, 5]), np.array([0, 2**40 + 1, -4, 4, 6])
    answer = ortweb.call(path, [a, b])
    assert answer.outputs is not None and answer.outputs[0].dtype == bool
    np.testing.assert_array_equal(answer.outputs[0], a > b)


def test_what_it_cannot_run_is_an_error_answer(ortweb, tmp_path):
    path = _model(tmp_path, helper.make_node("Frobnicate", ["x"], ["y"], domain="example.unknown"),
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                  [helper.make_opsetid("example.unknown", 1)])
    answer = ortweb.call(path, [np.ones(2, np.float32)])
    assert answer.outputs is None and answer.error.startswith("Error: ")
    assert judge(answer, [np.ones(2, np.float32)], [0.0], ortweb.tool)[0] == "error"
    assert "sequence-typed" in ortweb.call(path, [[np.ones(2, np.float32)]]).error
    relu = _model(tmp_path, helper.make_node("Relu", ["x"], ["y"]),
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    again = ortweb.call(relu, [np.array([-1, 0, 2], np.float32)])  # the page lives on
    np.testing.assert_array_equal(again.outputs[0], [0, 0, 2])
