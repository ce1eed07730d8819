"""Edges into LiteRT on LeNet-5 with real MNIST images, each deployment run by the LiteRT runner.

Keras -> tflite in all four precisions, Flax -> jax2tf -> tflite, PyTorch -> ONNX -> onnx2tf -> tflite
(full integer, in the `onnx2tf` environment) and PyTorch -> litert-torch -> tflite (in the `litert-torch`
environment), those two through the convert job, which draws its own calibration set.
Every deployment is compared to its source model's logits on the same 500 test images.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.metrics.inconsistency import compare_logits
from dlcompat.runtimes.litert import LiteRTRunner

from .mobile_models import CALIBRATION, mobile_models

#: variant -> (|Δlogit| relative to the largest source logit: the max for float, the p99 for int8 (an image past
#: the calibrated ranges saturates), most label flips of 500)
BOUNDS = {"fp32": (1e-5, 0), "fp16": (5e-3, 2), "int8-dynamic": (5e-2, 10), "int8-full": (5e-2, 15)}


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


def run_litert(path, x, layout="NHWC"):
    with LiteRTRunner(path, input_layout=layout, threads=1) as runner:
        return runner.infer(x), runner.info()


def check_close(logits, source, variant):
    rel, flips = BOUNDS[variant]
    result = compare_logits(source, logits)
    scale = float(np.abs(source).max())
    gap = result.p99_abs_logit_diff if variant.startswith("int8") else result.max_abs_logit_diff
    assert gap <= rel * scale, (variant, gap, scale)
    assert result.label_flips <= flips, (variant, result.label_flips)
    return result


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8-dynamic", "int8-full"])
def test_keras_to_litert_keeps_the_predictions(models, variant):
    deployed = models.deploy("keras.tflite", variant, "tensorflow")
    logits, info = run_litert(deployed.path, models.x)
    check_close(logits, models.source("tensorflow").logits, variant)
    assert deployed.facts["variant"] == variant and deployed.facts["input_layout"] == "NHWC"
    assert info["delegate"] == "XNNPACK" and info["delegate_partitions"] >= 1
    if variant == "int8-full":
        assert deployed.facts["calibration_images"] == CALIBRATION
        assert (info["input_dtype"], info["output_dtype"]) == ("int8", "int8")
    else:
        assert info["input_dtype"] == "float32" and info["input_quantization"] is None


def test_keras_litert_sizes_shrink_with_precision(models):
    sizes = {v: models.deploy("keras.tflite", v, "tensorflow").path.stat().st_size for v in BOUNDS}
    assert 0.45 < sizes["fp16"] / sizes["fp32"] < 0.6
    assert sizes["int8-dynamic"] / sizes["fp32"] < 0.35 and sizes["int8-full"] / sizes["fp32"] < 0.35


@pytest.mark.parametrize("variant", ["fp32", "int8-full"])
def test_flax_to_litert_through_jax2tf(models, variant):
    deployed = models.deploy("jax.tflite", variant, "jax")
    logits, info = run_litert(deployed.path, models.x)
    check_close(logits, models.source("jax").logits, variant)
    assert info["input_dtype"] == ("int8" if variant == "int8-full" else "float32")


def test_pytorch_to_litert_through_onnx2tf_full_integer(models):
    """onnx2tf's convert job in its environment (Python 3.12), calibrating on training images it draws itself."""
    onnx = models.deploy("torch.onnx", "dynamo", "pytorch")
    deployed = models.convert_jobs("onnx2tf.tflite", ["int8-full"], onnx.path, "NCHW")["int8-full"]
    assert deployed.facts["calibration_images"] == CALIBRATION and deployed.facts["input_layout"] == "NHWC"
    logits, info = run_litert(deployed.path, models.x)
    assert (info["input_dtype"], info["output_dtype"]) == ("int8", "int8")
    check_close(logits, models.source("pytorch").logits, "int8-full")


@pytest.fixture(scope="module")
def litert_torch(models):
    """litert-torch's convert jobs, in its own environment (one worker for both variants)."""
    return models.convert_jobs("torch.tflite", ["fp32", "int8-full"],
                               models.source("pytorch").path, "NCHW")


@pytest.mark.parametrize("variant", ["fp32", "int8-full"])
def test_pytorch_to_litert_through_litert_torch(models, litert_torch, variant):
    """A static batch of one, NHWC input, int8 input and output for int8-full."""
    deployed = litert_torch[variant]
    assert deployed.facts["input_layout"] == "NHWC" and deployed.facts["batch"] == 1
    logits, info = run_litert(deployed.path, models.x)
    assert info["static_batch"] == 1 and info["delegate"] == "XNNPACK"
    assert info["input_dtype"] == ("int8" if variant == "int8-full" else "float32")
    check_close(logits, models.source("pytorch").logits, variant)
