"""ResNet-20 through PyTorch's ONNX exporter: batch norms folded into convolutions, residual joins, global pooling."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from dlcompat.findings.align import align_onnx
from dlcompat.findings.diagnose import diagnose
from dlcompat.zoo.spec import BatchNorm, Conv2D
from tests.findings.artifacts import edited_onnx, onnx_localisation


def test_folded_batch_norms_and_residuals_are_aligned(torch_resnet20):
    spec = torch_resnet20.spec
    alignment = align_onnx(torch_resnet20.path, spec)
    layers = {layer.name: layer for layer in spec.iter_layers()}
    for entry in alignment.layers:
        layer = layers[entry.layer]
        if isinstance(layer, Conv2D):  # every convolution computes its batch norm too: aligned to the norm
            assert entry.tensor is None and "folded by the converter" in entry.reason
        elif isinstance(layer, BatchNorm):
            assert entry.op == "Conv" and len(entry.group) == 2 and entry.group[1] == entry.layer
        else:
            assert entry.tensor is not None, (entry.layer, entry.reason)
    assert alignment["s2b1"].op == "Relu"  # the block's output: after the Add, its activation
    assert alignment["gap"].op == "ReduceMean"


def test_honest_resnet_is_within_noise_and_its_folded_weights_match(torch_resnet20):
    source = torch_resnet20
    localisation = onnx_localisation(source, source.path)
    assert localisation.first_divergent_layer is None, [(e.name, e.ratio) for e in localisation.layers]
    found = diagnose(source.spec, source.weights, source.path, align_onnx(source.path, source.spec), localisation)
    assert len(found.parameter_diffs) == 22  # 21 conv + bn groups and the dense layer
    assert max(max(d.values()) for d in found.parameter_diffs.values()) < 1e-5  # the canonical weights, BN folded


def test_a_changed_folded_conv_is_localised_to_its_group(torch_resnet20, tmp_path):
    def scale(graph):
        conv = next(n for n in graph.node if n.op_type == "Conv" and "s2b1__conv2" in n.input[1])
        init = next(i for i in graph.initializer if i.name == conv.input[1])
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01), init.name))

    source = torch_resnet20
    path = edited_onnx(source, tmp_path, scale)
    localisation = onnx_localisation(source, path)
    assert localisation.first_divergent_layer == "s2b1.bn2"
    assert not any(e.exceeds for e in localisation.layers[:localisation.layers.index(localisation["s2b1.bn2"])])
    found = diagnose(source.spec, source.weights, path, align_onnx(path, source.spec), localisation)
    assert found.fault_type == "weights"
