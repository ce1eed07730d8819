"""PyTorch LeNet-5 learns real MNIST: 2,000 training images from ../shared/data, 500 test images.

The bar is 93% test accuracy. Logistic regression on the same 2,000 images reaches 88.6% (measured
here with scikit-learn), and LeNet-5 on all 60,000 images about 99%. These settings (6 epochs of SGD,
lr 0.02, momentum 0.9) gave 95.8% and 94.6% for seeds 0 and 1. So 93% proves the convolutional layers
learned more than a linear model can, with room for seed-to-seed spread, without the full set.
"""

from __future__ import annotations

import numpy as np

from dlcompat.data.batching import to_float
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.registry import build_spec

BAR = 0.93


def test_lenet5_reaches_the_bar_on_a_real_mnist_subset(mnist_small):
    adapter = make_adapter("pytorch", threads=2)
    spec = build_spec("lenet5", mnist_small.input_shape, mnist_small.num_classes)
    model = adapter.build(spec, seed=0)
    settings = TrainSettings(epochs=6, batch_size=32, optimizer="sgd", lr=0.02, momentum=0.9, seed=0)
    history = adapter.train(model, spec, (to_float(mnist_small.train.x), mnist_small.train.y),
                            (to_float(mnist_small.val.x[:500]), mnist_small.val.y[:500]), settings)
    accuracy = float((adapter.predict(model, to_float(mnist_small.test.x)).argmax(1) == mnist_small.test.y).mean())
    assert len(mnist_small.train.y) == 2000 and len(mnist_small.test.y) == 500
    assert accuracy >= BAR, f"test accuracy {accuracy:.3f}"
    assert history.train_loss[-1] < history.train_loss[0]


def test_training_is_bit_for_bit_reproducible_with_a_fixed_seed(mnist_small):
    adapter = make_adapter("pytorch")
    spec = build_spec("lenet1", mnist_small.input_shape, mnist_small.num_classes)
    x, y = to_float(mnist_small.train.x[:400]), mnist_small.train.y[:400]
    settings = TrainSettings(epochs=1, batch_size=32, seed=5)
    weights = []
    for _ in range(2):
        model = adapter.build(spec, seed=5)
        adapter.train(model, spec, (x, y), (x[:10], y[:10]), settings)
        weights.append(adapter.get_weights(model))
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
