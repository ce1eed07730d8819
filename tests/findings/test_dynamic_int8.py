"""Dynamic-range int8 LiteRT (`keras.tflite` variant ``int8-dynamic``: int8 weights, float activations quantised
per call by the kernels), localised against its own measured floor (`metrics.noise.int8_dynamic_floor`): the honest
conversion is within noise, though it exceeds the float32 floor; faults injected into a copy exceed the int8-dynamic
floor at their layer."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.findings.align import align_tflite
from dlcompat.findings.graph import read_tflite
from dlcompat.findings.hop import localise_hop
from dlcompat.findings.localise import EXCEEDS, WITHIN
from dlcompat.metrics.noise import int8_dynamic_floor, quantise_per_image, rounded_to_int8
from tests.findings.conftest import keras_tflite_variant
from tests.findings.faults import tflite_kernel_transposed, tflite_scale

#: the layers whose weights TensorFlow stores as int8 (conv1's 150 and fc3's 840 weights are under its 1024-element
#: threshold and stay float32)
INT8_LAYERS = {"conv2", "fc1", "fc2"}


@pytest.fixture(scope="module")
def keras_dynamic(keras_lenet5_tflite):
    return keras_tflite_variant(keras_lenet5_tflite, "int8-dynamic")


def hop(source, path):
    return localise_hop(source.spec, source.weights, source.x, path, "tflite", source.floor,
                        input_layout=source.input_layout)


def test_the_graph_says_int8_dynamic_and_which_weights_are_integers(keras_dynamic):
    assert read_tflite(keras_dynamic.path).precision == "int8-dynamic"
    alignment = align_tflite(keras_dynamic.path, keras_dynamic.spec)
    assert alignment.precision == "int8-dynamic" and set(alignment.weight_quantisation) == INT8_LAYERS
    channels = {"conv2": 16, "fc1": 120, "fc2": 84}
    assert {k: len(q["scale"]) for k, q in alignment.weight_quantisation.items()} == channels  # per channel


def test_rounding_reproduces_the_files_scales(keras_dynamic):
    """The standard per-channel max/127 is the scale the converter stored (so rounding the canonical weights is the
    file's rounding)."""
    alignment = align_tflite(keras_dynamic.path, keras_dynamic.spec)
    for layer, q in alignment.weight_quantisation.items():
        w = np.asarray(keras_dynamic.weights[f"{layer}.weight"], np.float64)
        want = np.abs(w).reshape(len(w), -1).max(axis=1) / 127
        np.testing.assert_allclose(q["scale"], want, rtol=1e-5)
    rounded = rounded_to_int8(keras_dynamic.weights, alignment.weight_quantisation)
    assert np.array_equal(rounded["conv1.weight"], keras_dynamic.weights["conv1.weight"])  # float in the file
    assert not np.array_equal(rounded["conv2.weight"], keras_dynamic.weights["conv2.weight"])


def test_per_image_input_quantisation_keeps_zero_and_range():
    x = np.array([[-1.0, 0.0, 0.5, 2.0], [0.0, 0.1, 0.2, 0.3]])
    q = quantise_per_image(x)
    assert q[0, 1] == 0.0 and q[1, 0] == 0.0  # zero is exact (an integer zero point)
    assert np.max(np.abs(q - x)[0]) <= 3.0 / 255 / 2 + 1e-12 and np.max(np.abs(q - x)[1]) <= 0.3 / 255 / 2 + 1e-12


def test_the_honest_conversion_is_within_its_floor_not_the_float32_one(keras_dynamic):
    result = hop(keras_dynamic, keras_dynamic.path)
    judged = [e for e in result.localisation.layers if e.exceeds is not None]
    assert result.verdict == WITHIN, [(e.name, e.ratio) for e in judged]
    assert judged and all(e.unit == "rmse (int8-dynamic floor)" for e in judged)
    assert result.localisation.precision == "int8-dynamic" and result.logits["unit"] == "rmse (int8-dynamic floor)"
    worst = max(e.ratio for e in judged)
    # against the float32 floor alone, the same tensors are far beyond k: the floor of its own is needed
    float32_ratio = max(keras_dynamic.floor.ratio(e.name, e.rmse) for e in judged)
    print(f"\nint8-dynamic honest: worst ratio {worst:.3g} (int8-dynamic floor), {float32_ratio:.3g} (float32 floor)")
    assert worst <= keras_dynamic.floor.k < float32_ratio


@pytest.mark.parametrize(("label", "layer", "edit"), [
    ("kernel-transposed", "conv2", lambda at: tflite_kernel_transposed(at("conv2"))),
    ("weight-scale x1.5", "fc1", lambda at: tflite_scale(at("fc1"), 1.5, weights=True)),
    ("weight-scale x0.9", "fc2", lambda at: tflite_scale(at("fc2"), 0.9, weights=True)),
])
def test_an_injected_fault_exceeds_the_floor_at_its_layer(keras_dynamic, tmp_path, label, layer, edit):
    alignment = align_tflite(keras_dynamic.path, keras_dynamic.spec)

    def at(name):
        return next(e.tensor for e in alignment.layers if e.op and name in e.group)

    path = edit(at)(keras_dynamic.path, tmp_path / "faulty.tflite")
    result = hop(keras_dynamic, path)
    first = result.localisation[result.first_divergent_layer]
    print(f"\n{label} at {layer}: first {result.first_divergent_layer}, ratio {first.ratio:.3g}")
    first_layer = result.first_divergent_layer
    assert result.verdict == EXCEEDS and layer in (*alignment[first_layer].group, first_layer)


def test_the_floor_records_its_executions(keras_dynamic):
    alignment = align_tflite(keras_dynamic.path, keras_dynamic.spec)
    floor = int8_dynamic_floor(keras_dynamic.floor, keras_dynamic.spec, keras_dynamic.weights, keras_dynamic.x,
                               alignment.weight_quantisation)
    assert {"weights-int8", "inputs-int8-asymmetric", "inputs-int8-symmetric"} <= set(floor.executions)
    assert "conv2" in floor.method["int8_dynamic"] and floor.k == keras_dynamic.floor.k
    # the quantised layers' floors widen, conv1 (float weights, float input) keeps the float32 one
    assert floor.floor("fc1") > 10 * keras_dynamic.floor.floor("fc1")
    assert floor.floor("conv1") == pytest.approx(keras_dynamic.floor.floor("conv1"))
