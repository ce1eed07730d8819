"""LeNet-5 trained briefly on real MNIST (PyTorch), with its noise floor, exported to ONNX (torch.onnx, dynamo);
the same weights in Keras, with Keras's noise floor, converted to a float32 `.tflite` (the `keras.tflite` edge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcompat.data.batching import to_float

#: training images (one epoch) and the images the layers are compared on
TRAIN, IMAGES = 500, 32


@dataclass
class Source:
    spec: Any
    weights: dict[str, np.ndarray]
    x: np.ndarray
    floor: Any  # the source model's NoiseFloor
    path: Path  # the derived artifact
    input_layout: str
    native: Path | None = None  # the source model's own file, where a converter made the artifact


@pytest.fixture(scope="session")
def torch_lenet5(mnist_small, tmp_path_factory):
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.metrics.noise import measure_noise_floor
    from dlcompat.zoo.registry import build_spec

    adapter = make_adapter("pytorch", threads=1)
    spec = build_spec("lenet5", mnist_small.input_shape, mnist_small.num_classes)
    model = adapter.build(spec, seed=0)
    settings = TrainSettings(epochs=1, batch_size=32, optimizer="sgd", lr=0.02, momentum=0.9, seed=0)
    adapter.train(model, spec, (to_float(mnist_small.train.x[:TRAIN]), mnist_small.train.y[:TRAIN]),
                  (to_float(mnist_small.val.x[:50]), mnist_small.val.y[:50]), settings)
    weights = adapter.get_weights(model)
    x = to_float(mnist_small.test.x[:IMAGES])
    floor = measure_noise_floor(adapter, model, spec, weights, x)
    path = tmp_path_factory.mktemp("findings") / "lenet5.onnx"
    facts = adapter.export(model, spec, "onnx", path, variant="dynamo")
    return Source(spec, weights, x, floor, path, facts["input_layout"])


@pytest.fixture(scope="session")
def keras_lenet5_tflite(torch_lenet5, tmp_path_factory):
    from dlcompat.converters.graph import convert_file, converter
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.metrics.noise import measure_noise_floor

    spec, weights, x = torch_lenet5.spec, torch_lenet5.weights, torch_lenet5.x
    adapter = make_adapter("tensorflow", threads=1)
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, weights)
    floor = measure_noise_floor(adapter, model, spec, weights, x, threads=())
    root = tmp_path_factory.mktemp("findings-keras")
    source = root / f"lenet5{adapter.native_suffix}"
    adapter.save(model, source)
    target = root / "lenet5-fp32.tflite"
    facts = convert_file(converter("keras.tflite"), source, target, spec=spec, variant="fp32", threads=1)
    return Source(spec, weights, x, floor, target, facts["input_layout"], source)


def keras_tflite_variant(source: Source, variant: str) -> Source:
    """The Keras model of `source` (a `keras.tflite` Source) converted again with the edge's `variant`."""
    from dlcompat.converters.graph import convert_file, converter

    target = source.native.parent / f"lenet5-{variant}.tflite"
    facts = convert_file(converter("keras.tflite"), source.native, target, spec=source.spec, variant=variant,
                         threads=1)
    return Source(source.spec, source.weights, source.x, source.floor, target, facts["input_layout"], source.native)


@pytest.fixture(scope="session")
def keras_lenet5_tflite_fp16(keras_lenet5_tflite):
    """The same Keras model as a `.tflite` with float16 weights (DEQUANTIZE operators before the kernels)."""
    return keras_tflite_variant(keras_lenet5_tflite, "fp16")


@pytest.fixture(scope="session")
def keras_lenet5_onnx(keras_lenet5_tflite):
    """The same Keras model exported to ONNX by Keras (tf2onnx): NHWC input, MatMul + Add dense layers."""
    from dlcompat.frameworks.registry import make_adapter

    source = keras_lenet5_tflite
    adapter = make_adapter("tensorflow", threads=1)
    model = adapter.load(source.spec, source.native)
    target = source.native.parent / "lenet5-keras.onnx"
    facts = adapter.export(model, source.spec, "onnx", target)
    return Source(source.spec, source.weights, source.x, source.floor, target, facts["input_layout"], source.native)


@pytest.fixture(scope="session")
def keras_lenet5_tflite_int8(keras_lenet5_tflite, mnist_small):
    """The same Keras model as a full-integer `.tflite` (int8 tensors, 100 calibration images)."""
    from dlcompat.converters.graph import convert_file, converter
    from dlcompat.data.calibration import calibration_images

    source = keras_lenet5_tflite
    target = source.native.parent / "lenet5-int8.tflite"
    facts = convert_file(converter("keras.tflite"), source.native, target, spec=source.spec, variant="int8-full",
                         threads=1, calibration=calibration_images(mnist_small, 100, seed=0))
    return Source(source.spec, source.weights, source.x, source.floor, target, facts["input_layout"], source.native)


@pytest.fixture(scope="session")
def torch_resnet20(shared_data_dir, tmp_path_factory):
    """ResNet-20 in PyTorch with random weights and non-trivial batch-norm statistics, its floor on 8 real CIFAR-10
    test images, exported to ONNX by torch.onnx (dynamo, which folds each batch norm into its convolution)."""
    from dlcompat.data.registry import load_dataset
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.metrics.noise import measure_noise_floor
    from dlcompat.zoo.registry import build_spec
    from tests.frameworks.weights import random_weights

    data = load_dataset("cifar10", shared_data_dir, limit_train=10, limit_test=8, download=False)
    adapter = make_adapter("pytorch", threads=1)
    spec = build_spec("resnet20", data.input_shape, data.num_classes)
    model = adapter.build(spec, seed=0)
    weights = random_weights(spec, 3)
    adapter.set_weights(model, weights)
    x = to_float(data.test.x[:8])
    floor = measure_noise_floor(adapter, model, spec, weights, x)
    path = tmp_path_factory.mktemp("findings-resnet") / "resnet20.onnx"
    facts = adapter.export(model, spec, "onnx", path, variant="dynamo")
    return Source(spec, weights, x, floor, path, facts["input_layout"])


def torch_pte(source: Source, variant: str, calibration: np.ndarray | None = None) -> Source:
    """The PyTorch model of `source` (its weights), saved and lowered to an ExecuTorch `.pte` (`variant`)."""
    from dlcompat.converters.torch_pte import convert
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter("pytorch", threads=1)
    model = adapter.build(source.spec, seed=0)
    adapter.set_weights(model, source.weights)
    native = source.path.parent / "lenet5.pt"
    adapter.save(model, native)
    target = source.path.parent / f"lenet5-{variant}.pte"
    facts = convert(native, target, spec=source.spec, variant=variant, calibration=calibration)
    return Source(source.spec, source.weights, source.x, source.floor, target, facts["input_layout"], native)


@pytest.fixture(scope="session")
def torch_lenet5_pte(torch_lenet5):
    """The trained PyTorch LeNet-5 lowered to a float32 `.pte` delegated to XNNPACK (two partitions)."""
    return torch_pte(torch_lenet5, "fp32")


@pytest.fixture(scope="session")
def torch_lenet5_pte_int8(torch_lenet5, mnist_small):
    """The same model quantised to int8 (XNNPACK's quantizer, 100 calibration images) and lowered to XNNPACK."""
    from dlcompat.data.calibration import calibration_images

    return torch_pte(torch_lenet5, "int8", calibration_images(mnist_small, 100, seed=0))


#: the `keras.tfjs` edge in the `tfjs` toolchain environment (TensorFlow 2.19 + tensorflowjs): one archive per variant
_TFJS_CONVERT = """
import json, sys
from pathlib import Path
from dlcompat.converters.keras_tfjs import convert
source, out = Path(sys.argv[1]), Path(sys.argv[2])
print(json.dumps({v: convert(source, out / f"lenet5-{v}.tfjs.zip", spec=None, variant=v) for v in sys.argv[3:]}))
"""


def tfjs_archives(source: Source, variants: list[str]) -> dict[str, Source]:
    """The Keras model of `source` (its `.keras` file) through the `keras.tfjs` edge: variant -> its archive."""
    import json
    import os
    import subprocess

    from dlcompat.envs.registry import get_env

    env = get_env("tfjs")
    if not env.exists():
        pytest.skip("the tfjs toolchain environment is not built (dlcompat envs sync tfjs)")
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore")}
    done = subprocess.run([str(env.interpreter()), "-c", _TFJS_CONVERT, str(source.native), str(source.native.parent),
                           *variants], capture_output=True, text=True, timeout=300,
                          env={**env.worker_environ(1), **quiet})
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    return {v: Source(source.spec, source.weights, source.x, source.floor,
                      source.native.parent / f"lenet5-{v}.tfjs.zip", facts[v]["input_layout"], source.native)
            for v in variants}


@pytest.fixture(scope="session")
def keras_lenet5_tfjs(keras_lenet5_tflite) -> dict[str, Source]:
    """The Keras LeNet-5 of `keras_lenet5_tflite` (the trained weights, Keras's floor) through the `keras.tfjs` edge:
    variant (none, float16, uint8) -> its TF.js graph model archive."""
    return tfjs_archives(keras_lenet5_tflite, ["none", "float16", "uint8"])


@pytest.fixture(scope="session")
def keras_lenet5_tfjs_unbiased(keras_lenet5_tflite, tmp_path_factory) -> Source:
    """The same trained kernels with every bias zero (Keras's initial biases) as a float32 TF.js archive: without a
    bias to fuse, TensorFlow's optimiser moves each ReLU after its max pool."""
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.metrics.noise import measure_noise_floor

    source = keras_lenet5_tflite
    weights = {k: np.zeros_like(v) if k.endswith(".bias") else v for k, v in source.weights.items()}
    adapter = make_adapter("tensorflow", threads=1)
    model = adapter.build(source.spec, seed=0)
    adapter.set_weights(model, weights)
    floor = measure_noise_floor(adapter, model, source.spec, weights, source.x, threads=())
    native = tmp_path_factory.mktemp("findings-tfjs-unbiased") / f"lenet5{adapter.native_suffix}"
    adapter.save(model, native)
    unbiased = Source(source.spec, weights, source.x, floor, native, "NHWC", native)
    return tfjs_archives(unbiased, ["none"])["none"]
