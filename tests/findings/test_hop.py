"""One hop localised end to end (`findings.hop`), on the real LeNet-5 artifacts of `conftest`: honest ONNX and
LiteRT files are within noise, a fault injected into a copy is found at its layer with its type, a runtime without
intermediate tensors is compared at its output, and two model files are localised from the files alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import numpy_helper

from dlcompat.errors import DataError, ModelFileError
from dlcompat.findings.hop import floor_statement, localise_files, localise_hop
from dlcompat.findings.localise import EXCEEDS, WITHIN
from tests.findings.artifacts import edited_onnx

LENET5 = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"]
KEYS = {"name", "reference_tensor", "candidate_tensor", "max_abs", "rel_l2", "floor", "exceeds"}


def hop(source, path, fmt):
    return localise_hop(source.spec, source.weights, source.x, path, fmt, source.floor,
                        input_layout=source.input_layout)


def scale_conv_channel(index, factor):
    def edit(graph):
        conv = [n for n in graph.node if n.op_type == "Conv"][index]
        init = next(i for i in graph.initializer if i.name == conv.input[1])
        value = numpy_helper.to_array(init).copy()
        value[0] *= np.float32(factor)
        init.CopyFrom(numpy_helper.from_array(value, init.name))
    return edit


def test_honest_onnx_hop_is_within_noise_with_the_issue_json(torch_lenet5):
    result = hop(torch_lenet5, torch_lenet5.path, "onnx")
    data = json.loads(json.dumps(result.to_dict()))  # plain JSON
    assert data["verdict"] == WITHIN and data["first_divergent_layer"] is None and data["fault_type"] is None
    assert [layer["name"] for layer in data["layers"]] == LENET5
    assert all(set(layer) >= KEYS and layer["exceeds"] is False for layer in data["layers"])
    assert data["logits"]["exceeds"] is False and data["logits"]["top1_flips"] == 0


def test_honest_tflite_hop_is_within_noise(keras_lenet5_tflite):
    result = hop(keras_lenet5_tflite, keras_lenet5_tflite.path, "tflite")
    assert result.verdict == WITHIN, result.to_dict()["layers"]
    assert result.localisation["conv1"].exceeds is None and "fused" in result.localisation["conv1"].reason


def test_a_scaled_conv_channel_is_found_at_its_layer_as_weights(torch_lenet5, tmp_path):
    path = edited_onnx(torch_lenet5, tmp_path, scale_conv_channel(1, 1.05))
    result = hop(torch_lenet5, path, "onnx")
    assert (result.verdict, result.first_divergent_layer, result.fault_type) == (EXCEEDS, "conv2", "weights")
    assert [e.exceeds for e in result.localisation.layers[:3]] == [False, False, False]
    assert result.evidence and "conv2" in result.evidence[0]
    assert result.diagnosis["parameter_diffs"]["conv2"]["weight"] > 0.04


def test_a_runtime_without_intermediates_is_compared_at_its_output(torch_lenet5_pte, monkeypatch):
    """A runtime that cannot hand back the aligned tensors (here ExecuTorch, made to refuse): every layer but the last
    says why it was not compared, and the output is judged against the logits' floor."""
    from dlcompat.frameworks.base import Unavailable
    from dlcompat.runtimes.executorch import ExecuTorchRunner

    def refuse(self, x, names):
        raise Unavailable(f"{self.name}: {self.no_intermediates}")

    monkeypatch.setattr(ExecuTorchRunner, "intermediates", refuse)
    source = torch_lenet5_pte
    result = hop(source, source.path, "pte")
    layers = result.localisation.layers
    assert [e.name for e in layers] == [*LENET5, "logits"]
    assert all(e.candidate_tensor is None and "ExecuTorch" in e.reason for e in layers[:-1])
    assert layers[-1].reference_tensor == "fc3" and layers[-1].exceeds is not None
    assert result.verdict == (EXCEEDS if result.logits["exceeds"] else WITHIN)
    assert result.first_divergent_layer in (None, "logits")


def test_two_files_are_localised_from_the_files_alone(torch_lenet5, keras_lenet5_tflite, tmp_path):
    """The ONNX file as the reference (its spec found by alignment, its weights read from its constants), the Keras
    `.tflite` as the candidate, the floor measured in PyTorch on those weights."""
    images = tmp_path / "images.npz"
    np.savez(images, x=np.round(torch_lenet5.x * 255).astype(np.uint8))
    result = localise_files(torch_lenet5.path, keras_lenet5_tflite.path, images)
    assert result.model == "lenet5" and result.verdict == WITHIN, result.to_dict()["layers"]
    statement = floor_statement(result.floor)
    assert statement.startswith("PyTorch") and "batch 32/1, threads 1/2, oneDNN off; k = 2.5" in statement


def test_a_reference_file_of_canonical_weights_matches_its_onnx_export(torch_lenet5, tmp_path):
    weights, images = tmp_path / "weights.npz", tmp_path / "images.npz"
    np.savez(weights, **torch_lenet5.weights)
    np.savez(images, x=torch_lenet5.x)
    result = localise_files(weights, torch_lenet5.path, images)
    assert result.verdict == WITHIN and result.input_layout == "NCHW"


def test_files_that_do_not_fit_are_one_sentence(torch_lenet5, tmp_path):
    images = tmp_path / "images.npz"
    np.savez(images, x=np.zeros((4, 32, 32, 1), np.uint8))
    with pytest.raises(ModelFileError, match="32x32x1"):
        localise_files(torch_lenet5.path, torch_lenet5.path, images)
    np.savez(images, x=torch_lenet5.x * 2)
    with pytest.raises(DataError, match=r"not in \[0, 1\]"):
        localise_files(torch_lenet5.path, torch_lenet5.path, images)
