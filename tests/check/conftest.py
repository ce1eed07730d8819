"""Real model and image files for `dlcompat check`'s input side, each made once per session.

The models are tiny image classifiers written by the frameworks' own savers and exporters: a Keras conv net saved
as `.keras` and converted to `.tflite` (`tf.lite.TFLiteConverter`), a torch conv net exported as a `.pt2`
(`torch.export.save`), traced to TorchScript (`torch.jit.trace`) and exported to ONNX (`torch.onnx.export`).
The images are real CIFAR-10 and MNIST test images from ../shared/data.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcompat.data.cifar10 import parse_batch
from dlcompat.data.mnist import parse_idx

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def cifar(shared_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 64 CIFAR-10 test images (uint8 NHWC) and their labels."""
    path = shared_data_dir / "cifar10" / "test_batch.bin.gz"
    x, y = parse_batch(gzip.decompress(path.read_bytes()), path)
    return x[:64], y[:64]


@pytest.fixture(scope="session")
def mnist(shared_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 32 MNIST test images (uint8 NHWC, one channel) and their labels."""
    folder = shared_data_dir / "mnist"
    images = parse_idx(gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes()), folder, 0x803)
    labels = parse_idx(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()), folder, 0x801)
    return np.array(images[:32, :, :, None]), labels[:32].astype(np.int64)


@dataclass
class ModelFiles:
    folder: Path
    keras_model: Any
    torch_model: Any
    keras: Path
    tflite: Path
    pt2: Path
    torchscript: Path
    onnx: Path


def _keras_model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="tiny_cifar")


def _torch_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 10)).eval()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    import tensorflow as tf
    import torch

    folder = tmp_path_factory.mktemp("models")
    keras_model = _keras_model()
    keras_model.save(folder / "tiny.keras")
    (folder / "tiny.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())
    torch_model = _torch_model()
    example = torch.zeros(2, 3, 32, 32)
    program = torch.export.export(torch_model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, folder / "tiny.pt2")
    torch.jit.trace(torch_model, example).save(str(folder / "tiny_script.pt"))
    torch.onnx.export(torch_model, (example,), str(folder / "tiny.onnx"), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    return ModelFiles(folder, keras_model, torch_model, folder / "tiny.keras", folder / "tiny.tflite",
                      folder / "tiny.pt2", folder / "tiny_script.pt", folder / "tiny.onnx")
