"""The reducer on a synthetic graph with one planted failing node: a runtime whose Tanh is wrong (numeric) or
that rejects Tanh (an error), and a twelve-node graph around it; the result is that node alone, proven 1-minimal."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from dlcompat.findings.reduce import golden_values, one_minimal, reduce_model
from dlcompat.metrics.noise import FP32_EPS, K_NOISE


class Tanh(OpRun):
    """A planted fault: Tanh clipped at +-0.5 instead of saturating at +-1."""

    op_domain = ""

    def _run(self, x):
        return (np.clip(x, -0.5, 0.5).astype(x.dtype),)


def _graph() -> onnx.ModelProto:
    """x -> Relu -> Add(b) -> Mul(w) -> Sigmoid -> Tanh -> Exp, x -> Abs -> Neg -> Sqrt(abs) ... joined by Concat."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 6)).astype(np.float32) * 3, name)
             for name in ("b", "w", "c")]
    nodes = [
        helper.make_node("Abs", ["x"], ["a0"]), helper.make_node("Add", ["a0", "b"], ["a1"]),
        helper.make_node("Mul", ["a1", "w"], ["a2"]), helper.make_node("Sin", ["a2"], ["a3"]),
        helper.make_node("Neg", ["x"], ["n0"]), helper.make_node("Mul", ["a3", "c"], ["a4"]),
        helper.make_node("Tanh", ["a4"], ["t0"]), helper.make_node("Exp", ["n0"], ["n1"]),
        helper.make_node("Add", ["t0", "n1"], ["s0"]), helper.make_node("Relu", ["s0"], ["s1"]),
        helper.make_node("Sqrt", ["s1"], ["s2"]), helper.make_node("Concat", ["s2", "a4"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "planted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


FEEDS = {"x": np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)}


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _numeric(case) -> bool:
    """Fails when the buggy runtime's outputs are beyond K_NOISE x the noise floor, measured as the honest reference
    evaluator's rmse against the golden values (never below float32's rounding of them)."""
    got = ReferenceEvaluator(case.model, new_ops=[Tanh]).run(None, case.inputs)
    honest = ReferenceEvaluator(case.model).run(None, case.inputs)
    for value, fair, want in zip(got, honest, case.outputs.values(), strict=True):
        floor = max(_rmse(fair, want), FP32_EPS * float(np.sqrt(np.mean(want.astype(np.float64) ** 2))))
        if _rmse(value, want) > K_NOISE * floor:
            return True
    return False


def _error(case) -> bool:
    """Fails the same way: a runtime that rejects Tanh with one error message."""
    try:
        if any(n.op_type == "Tanh" for n in case.model.graph.node):
            raise NotImplementedError("op_type Tanh is not supported")
        ReferenceEvaluator(case.model).run(None, case.inputs)
    except NotImplementedError as exc:
        return bool(re.search(r"Tanh is not supported", str(exc)))
    return False


def test_golden_values_hold_every_tensor():
    model = _graph()
    golden = golden_values(model, FEEDS)
    assert {o for n in model.graph.node for o in n.output} <= set(golden)
    np.testing.assert_allclose(golden["n0"], -FEEDS["x"])


@pytest.mark.parametrize("check", [_numeric, _error], ids=["numeric", "error"])
def test_reduces_to_the_planted_node(check):
    model = _graph()
    reduction = reduce_model(model, FEEDS, check)
    assert reduction.case.op_types == ["Tanh"]
    assert reduction.nodes == [6] and reduction.minimal and reduction.original_nodes == 12
    assert set(reduction.case.inputs) == {"a4"} and set(reduction.case.outputs) == {"t0"}
    onnx.checker.check_model(reduction.case.model)
    assert one_minimal(model, reduction.nodes, golden_values(model, FEEDS), check)
    # the reduced model runs on its own, fed the golden intermediate, and gives the golden output
    want = np.tanh(reduction.case.inputs["a4"])
    got = ReferenceEvaluator(reduction.case.model).run(None, reduction.case.inputs)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_model_that_does_not_fail_is_refused():
    with pytest.raises(ValueError, match="does not fail"):
        reduce_model(_graph(), FEEDS, lambda case: False)
