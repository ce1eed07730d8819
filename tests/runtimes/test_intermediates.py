"""Intermediate tensors: each runner that can hand them back agrees with the native model's layer, on real MNIST.

LeNet-5 with the canonical random weights (`tests.converters.mobile_models`), deployed to ONNX (PyTorch's
exporter) and to LiteRT (Keras, float32 and full integer): the first convolution's tensor, read by the
runtime under its own name and brought to (N, C, H, W), matches the framework's own activation of that
layer. Runtimes that cannot expose tensors say why in one sentence.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from tests.converters.mobile_models import mobile_models

from dlcompat.frameworks.base import Unavailable
from dlcompat.runtimes.coreml import CoreMLRunner
from dlcompat.runtimes.litert import LiteRTRunner
from dlcompat.runtimes.native import NativeRunner
from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

#: images compared (real MNIST test images)
IMAGES = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


def native(models, framework: str, layer: str) -> np.ndarray:
    with NativeRunner(models.source(framework).path, framework=framework, spec=models.spec) as runner:
        assert layer in runner.tensor_names()
        return runner.intermediates(models.x[:IMAGES], [layer])[layer]


def test_onnxruntime_first_conv_matches_pytorch(models):
    deployed = models.deploy("torch.onnx", "dynamo", "pytorch")
    graph = onnx.load(str(deployed.path)).graph
    conv = next(node.output[0] for node in graph.node if node.op_type == "Conv")
    x = models.x[:IMAGES]
    with OnnxRuntimeRunner(deployed.path, input_layout=deployed.facts["input_layout"]) as runner:
        assert conv in runner.tensor_names()
        logits = runner.infer(x)
        got = runner.intermediates(x, [conv])[conv]
        assert np.array_equal(runner.infer(x), logits)  # the deployed session is untouched
    expected = native(models, "pytorch", "conv1")
    assert got.shape == expected.shape  # NCHW: PyTorch's exporter keeps the layout
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def first_conv(runner: LiteRTRunner, x: np.ndarray, channels: int) -> tuple[str, np.ndarray]:
    """The first computed tensor with `channels` channels at the input's resolution (NHWC), as NCHW."""
    names = runner.tensor_names()
    values = runner.intermediates(x, names)
    name = next(n for n in names if values[n].shape == (len(x), *x.shape[1:3], channels))
    return name, values[name].transpose(0, 3, 1, 2)


#: variant -> largest |difference| allowed, relative to the largest activation (int8: a few quantization steps)
@pytest.mark.parametrize(("variant", "tolerance"), [("fp32", 1e-5), ("int8-full", 2e-2)])
def test_litert_first_conv_matches_keras(models, variant, tolerance):
    """The converter fuses conv1's ReLU into CONV_2D, so its output is the native relu1; int8 is dequantized."""
    deployed = models.deploy("keras.tflite", variant, "tensorflow")
    x = models.x[:IMAGES]
    with LiteRTRunner(deployed.path, threads=1) as runner:
        logits = runner.infer(x)
        name, got = first_conv(runner, x, channels=6)
        assert np.array_equal(runner.infer(x), logits)  # the delegated interpreter is untouched
        assert got.dtype == np.float32
        assert "conv1" in name and "relu1" in name  # the converter named the fused tensor after both layers
    expected = native(models, "tensorflow", "relu1")
    scale = float(np.abs(expected).max())
    gap = float(np.abs(got - expected).max())
    assert gap <= tolerance * scale, (name, gap, scale)


def test_unknown_tensor_names_are_refused(models):
    deployed = models.deploy("torch.onnx", "dynamo", "pytorch")
    with OnnxRuntimeRunner(deployed.path, input_layout=deployed.facts["input_layout"]) as runner, \
            pytest.raises(KeyError, match="no tensor 'conv9'"):
        runner.intermediates(models.x[:2], ["conv9"])


@pytest.mark.parametrize(("runner", "reason"), [
    (CoreMLRunner, "declares"),
])
def test_runtimes_without_intermediates_say_why(tmp_path, runner, reason):
    made = runner(tmp_path / "model")
    with pytest.raises(Unavailable, match=reason):
        made.tensor_names()
    with pytest.raises(Unavailable, match=reason):
        made.intermediates(np.zeros((1, 28, 28, 1), np.float32), ["x"])
