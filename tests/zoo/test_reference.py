"""The float64 reference forward pass agrees with PyTorch (float64) on every named layer of every zoo model.

Real images (MNIST, CIFAR-10 from the shared data folder), random weights with non-trivial batch-norm
statistics; PyTorch runs the same spec in float64, so the two must agree to float64 rounding, not float32's.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset
from dlcompat.zoo.reference import conv2d, forward
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights

MODELS = [("lenet1", "mnist"), ("lenet5", "mnist"), ("resnet20", "cifar10"), ("vgg16", "cifar10")]


@pytest.mark.parametrize(("model", "dataset"), MODELS)
def test_every_layer_matches_pytorch_in_float64(model, dataset, shared_data_dir):
    pytest.importorskip("torch")
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    data = load_dataset(dataset, shared_data_dir, limit_train=10, limit_test=5, download=False)
    spec = build_spec(model, data.input_shape, data.num_classes)
    weights = random_weights(spec, seed=3)
    x = to_float(data.test.x)
    logits, outputs = forward(spec, weights, x)

    adapter = PyTorchAdapter(threads=1)
    net = adapter.build(spec, seed=0)
    adapter.set_weights(net, weights)
    torch_acts = adapter.activations(net.double(), x.astype(np.float64))
    assert set(torch_acts) <= set(outputs)
    for name, value in torch_acts.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-9, atol=1e-9, err_msg=f"{model} layer {name}")
    assert logits.dtype == np.float64 and logits.shape == (len(x), data.num_classes)
    assert not np.array_equal(logits, logits.astype(np.float32))  # really float64, not float32 widened


def test_strided_padded_convolution_against_a_direct_sum():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    out = conv2d(x, w, b, stride=2, padding=1)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 4, 4, 3))
    for i in range(4):
        for j in range(3):
            patch = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, :, i, j] = np.einsum("ncij,ocij->no", patch, w) + b
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_images_of_the_wrong_shape_are_refused(shared_data_dir):
    spec = build_spec("lenet1", (28, 28, 1), 10)
    with pytest.raises(ValueError, match=r"takes images of shape \(N, 28, 28, 1\)"):
        forward(spec, random_weights(spec), np.zeros((2, 32, 32, 3)))
