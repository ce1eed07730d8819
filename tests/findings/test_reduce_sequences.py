"""The reducer on graphs whose values between nodes are sequences of tensors: a removal that leaves a sequence-typed
value makes it a sequence-typed graph input (or output) fed with the golden list ONNX Runtime computed, and a
removal the tool cannot run is recorded per node ("cannot remove: ..."), so that "1-minimal" is exact."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from dlcompat.findings.reduce import CannotJudge, extract, golden_values, one_minimal, reduce_model, sequence_types


def _graph() -> onnx.ModelProto:
    """x, y -> Relu, Neg -> SequenceConstruct -> SequenceInsert(x) -> ConcatFromSequence -> Sigmoid -> Split...; and
    SplitToSequence(x) -> SequenceAt(1) -> Abs, both joined by Concat."""
    pos = numpy_helper.from_array(np.array(1, np.int64), "pos")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["y"], ["n"]),
        helper.make_node("SequenceConstruct", ["r", "n"], ["s0"]),
        helper.make_node("SequenceInsert", ["s0", "x"], ["s1"]),
        helper.make_node("ConcatFromSequence", ["s1"], ["c"], axis=0),
        helper.make_node("Sigmoid", ["c"], ["g"]),
        helper.make_node("SplitToSequence", ["x"], ["t0"], axis=0),
        helper.make_node("SequenceAt", ["t0", "pos"], ["t1"]),
        helper.make_node("Abs", ["t1"], ["a"]),
        helper.make_node("Concat", ["g", "a"], ["out"], axis=0),
    ]
    graph = helper.make_graph(nodes, "sequences", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3])
                                                   for n in ("x", "y")],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [7, 3])], [pos])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


FEEDS = {n: np.random.default_rng(i).normal(size=(2, 3)).astype(np.float32) for i, n in enumerate("xy")}


def _run(case) -> list:
    session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, case.inputs)


def _rejects(op: str):
    """A runtime that rejects `op` (one error message), and runs everything else as ONNX Runtime does."""
    def fails(case) -> bool:
        if any(n.op_type == op for n in case.model.graph.node):
            return True
        _run(case)
        return False
    return fails


def test_golden_sequences_are_lists_and_typed():
    model = _graph()
    golden = golden_values(model, FEEDS)
    assert isinstance(golden["s1"], list) and len(golden["s1"]) == 3
    np.testing.assert_array_equal(golden["s1"][2], FEEDS["x"])
    assert sequence_types(model)["t0"] == TensorProto.FLOAT


def test_a_removal_makes_a_sequence_typed_input_fed_with_the_golden_list():
    model = _graph()
    golden = golden_values(model, FEEDS)
    reduction = reduce_model(model, FEEDS, _rejects("ConcatFromSequence"), golden=golden)
    case = reduction.case
    assert case.op_types == ["ConcatFromSequence"] and reduction.minimal
    assert case.model.graph.input[0].type.HasField("sequence_type") and isinstance(case.inputs["s1"], list)
    onnx.checker.check_model(case.model)
    np.testing.assert_allclose(_run(case)[0], golden["c"])  # ONNX Runtime takes the sequence-typed graph input
    assert reduction.removals == {4: "cannot remove: it is the only node"}
    # the reduced model's data round-trips through a SequenceProto, as a reproducer writes it
    proto = numpy_helper.from_list(case.inputs["s1"], "input_0")
    assert [a.shape for a in numpy_helper.to_list(onnx.SequenceProto.FromString(proto.SerializeToString()))] == [
        (2, 3)] * 3


def test_sequence_typed_outputs_are_kept_and_run():
    model = _graph()
    golden = golden_values(model, FEEDS)
    case = extract(model, [6], golden)  # SplitToSequence alone ends in the sequence-typed t0
    assert case.model.graph.output[0].type.HasField("sequence_type")
    got = _run(case)[0]
    assert isinstance(got, list) and [a.tolist() for a in got] == [a.tolist() for a in golden["t0"]]
    assert [a.tolist() for a in ReferenceEvaluator(case.model).run(None, case.inputs)[0]] == [
        a.tolist() for a in golden["t0"]]


def test_a_removal_the_tool_cannot_run_is_recorded_per_node_and_still_1_minimal():
    """A runtime that fails on SequenceAt and cannot take a sequence-typed graph input (as onnx2tf): SequenceAt alone
    would need one, so SplitToSequence stays, with that reason; the result is proven 1-minimal with both reasons."""
    def fails(case) -> bool:
        if any(v.type.HasField("sequence_type") for v in case.model.graph.input):
            raise CannotJudge("cannot remove: the runtime does not take the sequence-typed input it leaves")
        return any(n.op_type == "SequenceAt" for n in case.model.graph.node)

    model = _graph()
    golden = golden_values(model, FEEDS)
    reduction = reduce_model(model, FEEDS, fails, golden=golden)
    assert reduction.case.op_types == ["SplitToSequence", "SequenceAt"] and reduction.minimal
    assert reduction.removals == {
        6: "cannot remove: the runtime does not take the sequence-typed input it leaves",
        7: "removing it loses the failure"}
    assert reduction.why.startswith("1-minimal") and "SplitToSequence: cannot remove" in reduction.why
    assert one_minimal(model, reduction.nodes, golden, fails)


def test_an_empty_sequence_of_unknown_type_cannot_be_expressed():
    model = _graph()
    golden = {**golden_values(model, FEEDS), "s1": []}
    with pytest.raises(CannotJudge, match="empty sequence"):
        extract(model, [4], golden, sequences={})
