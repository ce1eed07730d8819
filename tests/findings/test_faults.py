"""Each kind of injected fault of `benchmarks/localisation.py`, once, on the session's real artifacts: localised to
the injected layer (or the fused group computing it) and typed, in float32, float16 and int8 artifacts."""

from __future__ import annotations

import pytest

from dlcompat.findings.align import align_file
from dlcompat.findings.diagnose import diagnose
from dlcompat.findings.localise import EXCEEDS
from tests.findings import faults
from tests.findings.artifacts import onnx_localisation, tflite_localisation


def localised(source, edit, tmp_path):
    """(localisation, diagnosis, alignment) of a faulty copy of `source.path` made by `edit`."""
    path = edit(source.path, tmp_path / f"faulty{source.path.suffix}")
    alignment = align_file(path, source.spec)
    localise = onnx_localisation if path.suffix == ".onnx" else tflite_localisation
    localisation = localise(source, path)
    return localisation, diagnose(source.spec, source.weights, path, alignment, localisation), alignment


def at(source, layer):
    return faults.operator_entry(align_file(source.path, source.spec), layer).tensor


def test_dropped_onnx_relu_is_an_identity_where_the_relu_was(torch_lenet5, tmp_path):
    loc, found, alignment = localised(torch_lenet5, faults.onnx_relu_dropped(at(torch_lenet5, "relu2")), tmp_path)
    assert alignment["relu2"].passthrough and alignment["relu2"].tensor == alignment["conv2"].tensor
    assert (loc.first_divergent_layer, found.fault_type) == ("relu2", "operator semantics")
    assert loc["conv2"].exceeds is False


def test_dropped_fused_relu_in_tflite(keras_lenet5_tflite, tmp_path):
    source = keras_lenet5_tflite
    loc, found, alignment = localised(source, faults.tflite_activation_dropped(at(source, "relu1")), tmp_path)
    assert alignment["conv1"].tensor is not None  # no longer fused: the convolution is its own layer
    assert (loc.first_divergent_layer, found.fault_type) == ("relu1", "operator semantics")


def test_permuted_flatten_order_in_onnx_is_a_layout_fault_at_the_dense_layer(torch_lenet5, tmp_path):
    loc, found, _ = localised(torch_lenet5, faults.onnx_flatten_order(at(torch_lenet5, "flatten")), tmp_path)
    assert loc["flatten"].exceeds is False  # the flatten's values are right, in (H, W, C) order
    assert (loc.first_divergent_layer, found.fault_type) == ("fc1", "layout/transpose"), found.evidence
    assert "flatten order" in found.evidence[0]


def test_permuted_flatten_order_in_a_float16_tflite_exceeds_its_floor(keras_lenet5_tflite_fp16, tmp_path):
    source = keras_lenet5_tflite_fp16
    edit = faults.tflite_flatten_order(at(source, "fc1"), (5, 5, 16))
    loc, found, alignment = localised(source, edit, tmp_path)
    assert loc.precision == "float16" and loc.verdict == EXCEEDS
    assert "fc1" in alignment[loc.first_divergent_layer].group
    assert found.fault_type == "layout/transpose", found.evidence


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_changed_input_normalisation_is_input_preprocessing(fmt, torch_lenet5, keras_lenet5_tflite, tmp_path):
    source = torch_lenet5 if fmt == "onnx" else keras_lenet5_tflite
    edit = faults.onnx_input_normalisation(1) if fmt == "onnx" else faults.tflite_input_normalisation(1)
    loc, found, alignment = localised(source, edit, tmp_path)
    assert "conv1" in alignment[loc.first_divergent_layer].group
    assert found.fault_type == "input preprocessing", found.evidence
    assert "the model's input" in found.evidence[0]


def test_refolded_batch_norm_epsilon_is_a_hyper_parameter_fault(torch_resnet20, tmp_path):
    source = torch_resnet20
    edit = faults.onnx_bn_eps(at(source, "s1b1.bn1"), source.spec, source.weights, "s1b1.bn1", 1e-3)
    loc, found, _ = localised(source, edit, tmp_path)
    assert loc.first_divergent_layer == "s1b1.bn1"
    assert found.fault_type == "hyper-parameter", found.evidence
    fitted, spec_eps = found.hyper_parameter_diffs["s1b1.bn1"]["epsilon (folded)"]
    assert spec_eps == 1e-5 and fitted == pytest.approx(1e-3, rel=0.05)


@pytest.mark.parametrize(("layer", "factor", "weights"), [("conv2", 1.5, True), ("fc1", 0.25, False)])
def test_wrong_int8_scale_is_a_quantisation_fault(layer, factor, weights, keras_lenet5_tflite_int8, tmp_path):
    source = keras_lenet5_tflite_int8
    loc, found, alignment = localised(source, faults.tflite_scale(at(source, layer), factor, weights), tmp_path)
    assert loc.precision == "int8" and layer in alignment[loc.first_divergent_layer].group
    assert loc[loc.first_divergent_layer].unit == "quantisation steps"
    assert found.fault_type == "quantisation", found.evidence
