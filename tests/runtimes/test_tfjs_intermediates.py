"""TensorFlow.js hands back intermediate tensors: a graph model in the page executes up to any of its nodes
(`TfjsRunner.intermediates`), on the deployed model itself; its first convolution's node equals Keras's own layer,
its last node equals the logits `infer` returns (which stay untouched); unknown names are refused.

Real LeNet-5 (Keras, one epoch on real MNIST) through the `keras.tfjs` edge, in Debian's Chromium, the cpu backend.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from dlcompat.runtimes.browser.runner import TfjsRunner, tfjs_topology

#: real MNIST test images compared
IMAGES = 32


def _fused(node: dict) -> list[str]:
    """A `_FusedConv2D` / `_FusedMatMul` node's fused operations (`model.json` holds them base64-encoded)."""
    listed = node.get("attr", {}).get("fused_ops", {}).get("list", {})
    return [base64.b64decode(s).decode() for s in listed.get("s", [])]


def test_tfjs_nodes_equal_keras_layers(keras_lenet5, tfjs_models, mnist_test):
    import keras

    x = mnist_test[0][:IMAGES]
    path = tfjs_models["none"]["path"]
    nodes = {node["name"]: node for node in tfjs_topology(path)["node"]}
    with TfjsRunner(path, variant="cpu") as runner:
        names = runner.tensor_names()
        assert not {nodes[n]["op"] for n in names} & {"Const", "Placeholder"}
        conv = next(n for n in names if nodes[n]["op"] in ("Conv2D", "_FusedConv2D"))
        last = names[-1]
        logits = runner.infer(x)
        got = runner.intermediates(x, [conv, last])
        assert np.array_equal(runner.infer(x), logits)  # the deployed model, unchanged
        with pytest.raises(KeyError, match="no tensor 'conv9'"):
            runner.intermediates(x[:2], ["conv9"])
    np.testing.assert_allclose(got[last], logits, rtol=1e-5, atol=1e-5)
    model = keras.saving.load_model(keras_lenet5["path"], compile=False)
    expected = np.asarray(keras.Model(model.inputs, model.get_layer("conv1").output)(x))
    if "Relu" in _fused(nodes[conv]):
        expected = np.maximum(expected, 0)
    assert got[conv].shape == expected.shape == (IMAGES, 28, 28, 6)  # NHWC, as TensorFlow computes it
    np.testing.assert_allclose(got[conv], expected, rtol=1e-4, atol=1e-4)
