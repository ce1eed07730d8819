"""Fault typing at the first divergent layer, on the artifacts of `conftest` with one fault injected in a copy."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from dlcompat.findings.align import align_onnx, align_tflite
from dlcompat.findings.diagnose import FAULT_TYPES, diagnose
from dlcompat.findings.localise import WITHIN, localise, read_tensors
from dlcompat.metrics.noise import INT8_FLOOR_STEPS, WELL_QUANTISED_STEPS
from dlcompat.runtimes.litert import LiteRTRunner
from dlcompat.zoo.reference import forward
from tests.findings.artifacts import edited_onnx, onnx_localisation, tflite_localisation


def onnx_diagnosis(source, path):
    return diagnose(source.spec, source.weights, path, align_onnx(path, source.spec),
                    onnx_localisation(source, path))


def _initializer(graph, op, index, position=1):
    node = [n for n in graph.node if n.op_type == op][index]
    return next(i for i in graph.initializer if i.name == node.input[position])


def _replace(init, value):
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), init.name))


def test_honest_artifacts_have_no_fault(torch_lenet5, keras_lenet5_tflite):
    found = onnx_diagnosis(torch_lenet5, torch_lenet5.path)
    assert found.fault_type is None and found.hyper_parameter_diffs == {}
    assert max(found.parameter_diffs["conv1"].values()) < 1e-6
    path = keras_lenet5_tflite.path
    lite = diagnose(keras_lenet5_tflite.spec, keras_lenet5_tflite.weights, path,
                    align_tflite(path, keras_lenet5_tflite.spec), tflite_localisation(keras_lenet5_tflite, path))
    assert lite.fault_type is None
    assert lite.hyper_parameter_diffs == {}  # conv1's explicit padding 2 is LiteRT's SAME
    assert set(lite.parameter_diffs) == {"relu1", "relu2", "relu3", "relu4", "fc3"}  # fused groups, fc1's HWC columns
    assert max(max(d.values()) for d in lite.parameter_diffs.values()) < 1e-6


def test_transposed_kernel_is_a_layout_fault(torch_lenet5, tmp_path):
    def transpose(graph):
        init = _initializer(graph, "Conv", 1)
        _replace(init, numpy_helper.to_array(init).transpose(0, 1, 3, 2))

    found = onnx_diagnosis(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, transpose))
    assert (found.first_divergent_layer, found.fault_type) == ("conv2", "layout/transpose")
    assert "(0, 1, 3, 2)" in found.evidence[0]


def test_changed_weights_are_a_weights_fault(torch_lenet5, tmp_path):
    def scale(graph):
        init = _initializer(graph, "Gemm", 0)
        value = numpy_helper.to_array(init).copy()
        value[3] *= 1.05
        _replace(init, value)

    found = onnx_diagnosis(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, scale))
    assert (found.first_divergent_layer, found.fault_type) == ("fc1", "weights")


def test_moved_pads_are_a_hyper_parameter_fault(torch_lenet5, tmp_path):
    def move(graph):
        conv = next(n for n in graph.node if n.op_type == "Conv")
        next(a for a in conv.attribute if a.name == "pads").ints[:] = [1, 1, 3, 3]

    found = onnx_diagnosis(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, move))
    assert (found.first_divergent_layer, found.fault_type) == ("conv1", "hyper-parameter")
    assert found.hyper_parameter_diffs["conv1"]["pads"] == ([1, 1, 3, 3], [2, 2, 2, 2])


def test_dropped_bias_term_is_operator_semantics(torch_lenet5, tmp_path):
    """Gemm's beta = 0 drops fc2's bias: same parameters, same hyper-parameters, another computation."""
    def drop(graph):
        gemm = [n for n in graph.node if n.op_type == "Gemm"][1]
        next(a for a in gemm.attribute if a.name == "beta").f = 0.0

    found = onnx_diagnosis(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, drop))
    assert (found.first_divergent_layer, found.fault_type) == ("fc2", "operator semantics")
    assert found.fault_type in FAULT_TYPES


def test_float16_rounding_in_float32_storage_is_a_quantisation_fault(torch_lenet5, tmp_path):
    """conv1's weights rounded to float16 (stored as float32): beyond float32's rounding, every one a float16 number
    within float16's rounding of the canonical weight, so the diagnosis names the rounding."""
    def round_fp16(graph):
        init = _initializer(graph, "Conv", 0)
        _replace(init, numpy_helper.to_array(init).astype(np.float16).astype(np.float32))

    path = edited_onnx(torch_lenet5, tmp_path, round_fp16)
    found = onnx_diagnosis(torch_lenet5, path)
    assert found.first_divergent_layer == "conv1"
    assert found.fault_type == "quantisation", found.evidence
    assert "rounded to float16" in found.evidence[0]
    assert 1e-5 < found.parameter_diffs["conv1"]["weight"] < 2.0**-10


def test_float16_litert_weights_are_within_the_float16_floor(keras_lenet5_tflite_fp16):
    """The fp16 variant stores its weights as float16: equal to the canonical ones up to float16's rounding, and
    judged against the float16 floor (not the float32 one, which its rounding exceeds ~1000x), within noise."""
    source = keras_lenet5_tflite_fp16
    alignment = align_tflite(source.path, source.spec)
    assert alignment.precision == "float16"
    assert alignment["relu1"].group == ("conv1", "relu1")
    localisation = tflite_localisation(source, source.path)
    assert localisation.verdict == WITHIN, [(e.name, e.ratio) for e in localisation.layers]
    assert localisation["relu1"].unit == "rmse (float16 floor)"
    assert source.floor.ratio("relu1", localisation["relu1"].rmse) > 20  # over the float32 floor, by far
    found = diagnose(source.spec, source.weights, source.path, alignment, localisation)
    assert found.fault_type is None
    assert 0 < found.parameter_diffs["relu1"]["weight"] < 2.0**-10


def test_keras_onnx_aligns_through_tf2onnx_rewrites(keras_lenet5_onnx):
    """tf2onnx's NHWC input reshaped to NCHW, its (H, W, C) flatten and MatMul + Add dense layers: every layer is
    aligned, the hop is within Keras's floor, and the parameters and hyper-parameters are the spec's."""
    source = keras_lenet5_onnx
    alignment = align_onnx(source.path, source.spec)
    assert alignment.unaligned() == {}
    assert alignment["flatten"].normalise.flatten_order == "HWC"
    assert alignment["fc1"].op == "Add"  # the bias addition completes the dense layer
    found = onnx_diagnosis(source, source.path)
    assert found.fault_type is None, found.profile
    assert found.hyper_parameter_diffs == {}
    assert set(found.parameter_diffs) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert max(max(d.values()) for d in found.parameter_diffs.values()) < 1e-6


def test_int8_litert_is_within_noise_in_quantisation_steps(keras_lenet5_tflite_int8):
    source = keras_lenet5_tflite_int8
    alignment = align_tflite(source.path, source.spec)
    assert alignment.precision == "int8"
    assert alignment["relu1"].normalise.quantisation is not None  # int8 tensors: scale and zero point kept
    with LiteRTRunner(source.path, threads=1) as runner:
        tensors = read_tensors(runner, alignment, source.x)
    localisation = localise(source.spec, source.weights, source.x, tensors, alignment, source.floor)
    assert localisation.verdict == WITHIN, [(e.name, e.steps) for e in localisation.layers]
    judged = [e for e in localisation.layers if e.exceeds is not None]
    assert judged and all(e.unit == "quantisation steps" for e in judged)
    # the first tensor carries about its own rounding: under 1/sqrt(12) steps, as a ReLU's zeros are exact
    assert 0.05 < localisation["relu1"].steps < WELL_QUANTISED_STEPS
    assert all(e.steps <= INT8_FLOOR_STEPS for e in judged)
    _, reference = forward(source.spec, source.weights, source.x)
    found = diagnose(source.spec, source.weights, source.path, alignment, localisation, tensors, reference)
    assert found.fault_type is None
