"""A LeNet-5 trained on real MNIST once for the whole attack suite, and the images it is attacked on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.frameworks.base import FrameworkAdapter, TrainSettings
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import ModelSpec


@dataclass
class Trained:
    adapter: FrameworkAdapter
    spec: ModelSpec
    model: Any
    x: np.ndarray  # float32 NHWC test images
    y: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.adapter.predict(self.model, x).argmax(axis=1)


@pytest.fixture(scope="session")
def lenet5(mnist_small) -> Trained:
    """PyTorch LeNet-5, 3 epochs on 2,000 real MNIST images (about 94 % on the test images), one thread."""
    adapter = make_adapter("pytorch", threads=1)
    spec = build_spec("lenet5", mnist_small.input_shape, mnist_small.num_classes)
    model = adapter.build(spec, seed=0)
    settings = TrainSettings(epochs=3, batch_size=32, optimizer="sgd", lr=0.02, momentum=0.9, seed=0)
    adapter.train(model, spec, (to_float(mnist_small.train.x), mnist_small.train.y),
                  (to_float(mnist_small.val.x[:10]), mnist_small.val.y[:10]), settings)
    return Trained(adapter, spec, model, to_float(mnist_small.test.x), mnist_small.test.y.astype(np.int64))
