"""The conformance pieces on real data: ONNX's backend cases load; the pass rule against ONNX Runtime's measured floor;
two failures that hit one cause are one group; and the whole pipeline (ONNX Runtime's floors, a route, grouping,
reduction, one reproducer for two cases whose reduced models agree) with a planted tool: ONNX's reference evaluator
whose Relu is |x|, served in the main environment like any route."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dlcompat.findings.conformance import (
    BackendCase,
    Verdict,
    error_key,
    floors_of,
    group_causes,
    judge,
    load_cases,
    run_route,
)
from dlcompat.findings.conformance_run import _causes_of
from dlcompat.findings.reproducer import read_problem
from dlcompat.findings.routes import ROUTE_TIMEOUT, Answer, RouteServer
from dlcompat.findings.tools import TOOLS, Tool
from dlcompat.metrics.noise import FP32_EPS, K_NOISE

PLANTED = '''\
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
class Relu(OpRun):
    op_domain = ""
    def _run(self, x):
        return (np.abs(x),)
def run(model_path, inputs):
    evaluator = ReferenceEvaluator(str(model_path), new_ops=[Relu])
    return evaluator.run(None, dict(zip(evaluator.input_names, inputs)))
'''


def test_backend_cases_load():
    cases, skipped = load_cases(("simple",))
    assert len(cases) >= 10 and all(c.inputs and c.outputs and c.nodes for c in cases)
    assert any("training-only" in s for s in skipped) and any("strings" in s for s in skipped)  # with reasons


def test_pass_rule_is_k_times_the_measured_floor():
    want = [np.linspace(1, 2, 8, dtype=np.float32)]
    ort = Answer([want[0] + 1e-4])
    floors = floors_of(ort, want)
    assert floors[0] == pytest.approx(1e-4, rel=1e-3) and floors[0] > FP32_EPS * 1.5
    tool = TOOLS["onnxruntime"]
    assert judge(Answer([want[0] + 2e-4]), want, floors, tool)[0] == "pass"
    status, _detail, figures = judge(Answer([want[0] + 3e-4]), want, floors, tool)
    assert status == "mismatch" and figures["tolerance"] == pytest.approx(K_NOISE * floors[0])
    assert judge(Answer(None, "ValueError: no"), want, floors, tool)[:2] == ("error", "ValueError: no")
    nchw = [np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)]
    assert judge(Answer([np.moveaxis(nchw[0], 1, -1)]), nchw, [0.0], TOOLS["onnx2tf"])[0] == "pass"


def test_two_failures_with_one_cause_are_one_group():
    cases = {name: BackendCase(name, None, [], [], 1, ("Conv",)) for name in ("a", "b", "c")}  # type: ignore[arg-type]
    verdicts = [Verdict("onnx2tf", "a", "error", "ValueError: Dimensions must be equal, but are 24 and 4 for 'add_3'"),
                Verdict("onnx2tf", "b", "error", "ValueError: Dimensions must be equal, but are 28 and 6 for 'add_5'"),
                Verdict("onnx2tf", "c", "mismatch", "output 0: rmse 1")]
    groups = group_causes(verdicts, cases)
    assert [(g.kind, g.cases) for g in groups] == [("error", ["a", "b"]), ("mismatch", ["c"])]
    assert error_key(verdicts[0].detail) == error_key(verdicts[1].detail)


def _case(tmp_path, name, first_op) -> BackendCase:
    nodes = [helper.make_node(first_op, ["x"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Sqrt", ["x2"], ["s"]), helper.make_node("Add", ["r", "s"], ["y"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5])
                                            for n in ("x", "x2")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])])
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = np.linspace(-3, 3, 10, dtype=np.float32).reshape(2, 5)
    h = -x if first_op == "Neg" else x
    return BackendCase(name, path, [x, np.abs(x)], [np.maximum(h, 0) + np.sqrt(np.abs(x))], 4, (first_op, "Relu"))


def test_pipeline_reduces_and_merges_to_one_reproducer(tmp_path, monkeypatch):
    monkeypatch.setitem(TOOLS, "planted", Tool("planted", "main", PLANTED, ("onnx", "numpy")))
    cases = {c.name: c for c in (_case(tmp_path, "neg", "Neg"), _case(tmp_path, "identity", "Identity"))}
    with RouteServer(TOOLS["onnxruntime"]) as ort:
        verdicts, answers = run_route(ort, list(cases.values()), None)
    assert [v.status for v in verdicts] == ["pass", "pass"]
    assert not ort.workdir.exists()  # a closed server leaves no folder behind
    floors = {name: floors_of(answers[name], case.outputs) for name, case in cases.items()}
    with RouteServer(TOOLS["planted"]) as server:
        verdicts, _ = run_route(server, list(cases.values()), floors)
        assert [v.status for v in verdicts] == ["mismatch", "mismatch"]
        causes, problems = _causes_of("planted", server, verdicts, cases, floors, tmp_path / "out", set(),
                                      lambda _m: None)
    assert len(causes) == 2 and len(problems) == 1  # two groups (their op types differ), one reduced cause
    problem = problems[0]
    assert problem.op_types == ["Relu"] and problem.minimal and sorted(problem.cells) == ["identity", "neg"]
    folder = tmp_path / "out" / problem.key
    assert read_problem(folder).cells == problem.cells
    done = subprocess.run([sys.executable, "repro.py"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr


def test_study_causes_map_to_tools_and_inputs():
    from dlcompat.findings.study_export import seeded_inputs, tool_for

    assert [tool_for(t) for t in ("onnx2tf", "onnx2torch", "ONNX Runtime", "ONNX Runtime Web · webgl", "LiteRT")] == [
        "onnx2tf", "onnx2torch", "onnxruntime", None, None]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 28, 28])])
    (x,) = seeded_inputs(helper.make_model(graph))
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32 and x.std() > 0.5


def test_a_route_timeout_is_not_judged_and_makes_no_cause():
    """A case the route cut at its own time limit (a busy machine) is "timeout": neither a pass nor a cause."""
    answer = Answer(None, f"{ROUTE_TIMEOUT}: onnx2tf ran past 300 s")
    assert judge(answer, [np.zeros(2, np.float32)], [0.0], TOOLS["onnx2tf"])[0] == "timeout"
    case = BackendCase("s/c", None, [], [], 1, ("MaxPool",))
    assert group_causes([Verdict("onnx2tf", "s/c", "timeout", answer.error)], {"s/c": case}) == []
