"""A reproducer whose reduced model has sequence-typed values (what removing a sequence operator leaves): the data files
of those values are onnx.SequenceProto, as in ONNX's own test data, and repro.py (still at most 40 lines, still no
dlcompat) reads them as lists and feeds them; an empty one is an empty SequenceProto of tensors (the model declares
their type)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlcompat.findings.reproducer import MAX_REPRO_LINES, write_reproducer
from dlcompat.findings.tools import TOOLS

from .test_reproducer import X, problem, run


def concat_model() -> onnx.ModelProto:
    """ConcatFromSequence fed a sequence-typed graph input."""
    graph = helper.make_graph([helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)], "concat",
                              [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sequence_data_is_a_sequence_proto_and_repro_feeds_it(tmp_path):
    sequence = [X, -X]
    folder = write_reproducer(tmp_path / "r", problem(op_types=["ConcatFromSequence"]), TOOLS["onnxruntime"],
                              concat_model(), [sequence], [np.concatenate(sequence)])
    data = onnx.SequenceProto.FromString((folder / "test_data_set_0" / "input_0.pb").read_bytes())
    assert [a.tolist() for a in numpy_helper.to_list(data)] == [a.tolist() for a in sequence]
    source = (folder / "repro.py").read_text()
    assert "SEQUENCES = ['input_0']" in source and source.count("\n") <= MAX_REPRO_LINES and "dlcompat" not in source
    done = run(folder)  # ONNX Runtime takes the sequence and gives the expected output: the problem is not there
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_empty_sequence_is_an_empty_sequence_of_tensors(tmp_path):
    graph = helper.make_graph([helper.make_node("SequenceEmpty", [], ["s"], dtype=TensorProto.FLOAT)], "empty", [],
                              [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    planted = problem(kind="error", pattern="never", tolerance=[0.0], op_types=["SequenceEmpty"])
    folder = write_reproducer(tmp_path / "r", planted, TOOLS["onnxruntime"], model, [], [[]])
    data = onnx.SequenceProto.FromString((folder / "test_data_set_0" / "output_0.pb").read_bytes())
    assert data.elem_type == onnx.SequenceProto.TENSOR and numpy_helper.to_list(data) == []
    done = run(folder)  # no error: the (planted) problem is gone
    assert done.returncode == 0 and "no error" in done.stdout
