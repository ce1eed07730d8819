"""Per-layer alignment and localisation on real artifacts: LeNet-5 trained on MNIST, as ONNX and as `.tflite`.

An honest conversion is within noise at every aligned layer; a fault injected into a copy of the artifact (a
convolution's kernel transposed kh <-> kw, a convolution's pads moved) is localised to the faulty layer, with the
layers before it within noise.
"""

from __future__ import annotations

import shutil

import numpy as np
from onnx import numpy_helper

from dlcompat.findings.align import align_onnx, align_tflite
from dlcompat.findings.localise import EXCEEDS, WITHIN
from tests.findings.artifacts import edited_onnx, onnx_localisation, tflite_localisation

LENET5 = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"]


def test_onnx_alignment_maps_every_layer(torch_lenet5):
    alignment = align_onnx(torch_lenet5.path, torch_lenet5.spec)
    assert [e.layer for e in alignment.layers] == LENET5
    assert alignment.unaligned() == {}  # PyTorch's exporter keeps every layer as its own operator
    assert [alignment[name].op for name in ("conv1", "relu1", "pool1", "flatten", "fc1")] == \
        ["Conv", "Relu", "MaxPool", "Reshape", "Gemm"]
    assert alignment["flatten"].normalise.flatten_order == "CHW"


def test_tflite_alignment_names_the_fused_layers(keras_lenet5_tflite):
    alignment = align_tflite(keras_lenet5_tflite.path, keras_lenet5_tflite.spec)
    assert [e.layer for e in alignment.layers] == LENET5
    assert set(alignment.unaligned()) == {"conv1", "conv2", "fc1", "fc2"}  # ReLU fused into CONV_2D / FC
    assert all("fused into the" in reason for reason in alignment.unaligned().values())
    assert alignment["relu1"].group == ("conv1", "relu1") and alignment["relu1"].op == "CONV_2D"
    assert alignment["relu1"].normalise.layout == "NHWC"
    assert alignment["flatten"].normalise.flatten_order == "HWC"  # Keras flattens NHWC in (H, W, C) order
    assert alignment["fc3"].tensor is not None


def test_honest_onnx_is_within_noise(torch_lenet5):
    result = onnx_localisation(torch_lenet5, torch_lenet5.path)
    assert result.verdict == WITHIN, result.to_dict()
    assert all(e.exceeds is False for e in result.layers)
    assert result.first_divergent_layer is None


def test_honest_tflite_is_within_noise(keras_lenet5_tflite):
    result = tflite_localisation(keras_lenet5_tflite, keras_lenet5_tflite.path)
    assert result.verdict == WITHIN, result.to_dict()
    judged = [e for e in result.layers if e.candidate_tensor is not None]
    assert [e.name for e in judged] == ["relu1", "pool1", "relu2", "pool2", "flatten", "relu3", "relu4", "fc3"]
    assert all(e.exceeds is False for e in judged)
    assert result["conv1"].exceeds is None and "fused" in result["conv1"].reason


def test_transposed_onnx_kernel_is_localised(torch_lenet5, tmp_path):
    def transpose_conv2(graph):
        conv2 = [n for n in graph.node if n.op_type == "Conv"][1]
        init = next(i for i in graph.initializer if i.name == conv2.input[1])
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).transpose(0, 1, 3, 2).copy(), init.name))

    result = onnx_localisation(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, transpose_conv2))
    assert result.verdict == EXCEEDS
    assert result.first_divergent_layer == "conv2"
    assert [e.exceeds for e in result.layers[:3]] == [False, False, False]
    assert result["conv2"].ratio > 100


def test_moved_onnx_pads_are_localised(torch_lenet5, tmp_path):
    def move_pads(graph):
        conv1 = next(n for n in graph.node if n.op_type == "Conv")
        pads = next(a for a in conv1.attribute if a.name == "pads")
        pads.ints[:] = [1, 1, 3, 3]  # same output shape, shifted by one pixel

    result = onnx_localisation(torch_lenet5, edited_onnx(torch_lenet5, tmp_path, move_pads))
    assert result.first_divergent_layer == "conv1"


def test_transposed_tflite_kernel_is_localised(keras_lenet5_tflite, tmp_path):
    """conv2's kernel bytes (O, kh, kw, I in the flatbuffer) swapped kh <-> kw in a copy of the file: the fault shows
    at relu2, the fused group's tensor, and not before."""
    kernel = keras_lenet5_tflite.weights["conv2.weight"].astype(np.float32)  # (O, I, kh, kw)
    stored = kernel.transpose(0, 2, 3, 1)  # LiteRT's (O, kh, kw, I)
    data = keras_lenet5_tflite.path.read_bytes()
    at = data.find(np.ascontiguousarray(stored).tobytes())
    assert at >= 0 and data.find(stored.tobytes(), at + 1) < 0
    swapped = np.ascontiguousarray(stored.transpose(0, 2, 1, 3)).tobytes()
    path = tmp_path / "faulty.tflite"
    shutil.copyfile(keras_lenet5_tflite.path, path)
    path.write_bytes(data[:at] + swapped + data[at + len(swapped):])
    result = tflite_localisation(keras_lenet5_tflite, path)
    assert result.first_divergent_layer == "relu2"
    assert result["relu1"].exceeds is False and result["pool1"].exceeds is False

