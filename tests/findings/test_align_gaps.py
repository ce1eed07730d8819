"""Alignment of the LiteRT graphs of jax2tf and litert-torch, made by the real `jax.tflite` and `torch.tflite` edges
from LeNet-5 with the canonical random weights (`tests.converters.mobile_models`): a one-input-channel convolution
emitted as ``DEPTHWISE_CONV_2D``, jax2tf's broadcast bias Add and ``MAXIMUM`` ReLU behind shape plumbing,
litert-torch's NHWC -> NCHW ``TRANSPOSE`` before the flatten. Every layer is aligned (or fused) and the honest
hops are within noise at every layer, in their own precision's units; a fault injected into the litert-torch
int8-dynamic file is found at its layer."""

from __future__ import annotations

import pytest

from dlcompat.data.batching import to_float
from dlcompat.findings.align import align_onnx, align_tflite
from dlcompat.findings.graph import read_tflite
from dlcompat.findings.hop import localise_hop
from dlcompat.findings.localise import EXCEEDS, WITHIN
from tests.converters.mobile_models import WEIGHTS_SEED, MobileModels
from tests.findings.conftest import Source
from tests.findings.faults import tflite_kernel_transposed
from tests.frameworks.weights import random_weights

IMAGES = 16
JAX_VARIANTS = ["fp32", "fp16", "int8-dynamic", "int8-full"]
TORCH_VARIANTS = ["fp32", "int8-dynamic"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return MobileModels(tmp_path_factory.mktemp("align-gaps"), mnist_small)


@pytest.fixture(scope="module")
def reference(models):
    """The canonical weights, the images and PyTorch's floor on them (the floor every hop here is judged by)."""
    from dlcompat.findings.hop import measure_floor

    weights = random_weights(models.spec, WEIGHTS_SEED)
    x = to_float(models.data.test.x[:IMAGES])
    return weights, x, measure_floor(models.spec, weights, x)


@pytest.fixture(scope="module")
def litert_torch(models):
    """litert-torch's convert jobs, in its own toolchain environment (one worker for both variants)."""
    return models.convert_jobs("torch.tflite", TORCH_VARIANTS, models.source("pytorch").path, "NCHW")


def source(models, reference, path):
    weights, x, floor = reference
    return Source(models.spec, weights, x, floor, path, "NHWC")


def hop(src, path=None):
    return localise_hop(src.spec, src.weights, src.x, path or src.path, "tflite", src.floor, input_layout="NHWC")


def check_aligned(alignment, fused=()):
    """Every layer has a tensor, except the named ones, fused into the next."""
    missing = alignment.unaligned()
    assert set(missing) == set(fused), missing
    assert all(why.startswith("fused into") for why in missing.values()), missing


@pytest.mark.parametrize("variant", JAX_VARIANTS)
def test_jax2tf_graphs_align_and_are_within_noise(models, reference, variant):
    path = models.deploy("jax.tflite", variant, "jax").path
    alignment = align_tflite(path, models.spec)
    clipped = ("conv1", "conv2", "fc1", "fc2") if variant == "int8-full" else ()  # int8 ranges starting at 0
    check_aligned(alignment, clipped)
    assert all("by the quantiser" in alignment[layer].reason for layer in clipped)
    if clipped:
        alignment = align_tflite(models.deploy("jax.tflite", "fp32", "jax").path, models.spec)
    graph = read_tflite(alignment.artifact)
    bias = graph.producer(alignment["conv1"].tensor)  # the Add of the broadcast bias, after the convolution
    assert bias.op == "ADD" and graph.producer(bias.inputs[0]).op == "DEPTHWISE_CONV_2D"  # one input channel
    assert alignment["relu1"].op == "MAXIMUM" and alignment["fc1"].op == "ADD"  # max(x, 0); the bias Add
    result = hop(source(models, reference, path))
    judged = [e for e in result.localisation.layers if e.exceeds is not None]
    assert len(judged) == len(result.localisation.layers) - len(clipped)
    assert result.verdict == WITHIN, [(e.name, e.ratio, e.unit) for e in judged]


@pytest.mark.parametrize("variant", TORCH_VARIANTS)
def test_litert_torch_graphs_align_and_are_within_noise(models, reference, litert_torch, variant):
    path = litert_torch[variant].path
    alignment = align_tflite(path, models.spec)
    check_aligned(alignment, fused=("conv1", "conv2", "fc1", "fc2"))
    assert alignment["relu1"].op == "DEPTHWISE_CONV_2D"
    assert alignment["flatten"].normalise.flatten_order == "CHW"  # after litert-torch's NHWC -> NCHW transpose
    result = hop(source(models, reference, path))
    assert result.localisation.precision == ("int8-dynamic" if variant == "int8-dynamic" else "float32")
    assert result.verdict == WITHIN, [(e.name, e.ratio, e.unit) for e in result.localisation.layers]


def test_a_fault_in_the_litert_torch_int8_dynamic_file_is_found_at_its_layer(models, reference, litert_torch,
                                                                           tmp_path):
    src = source(models, reference, litert_torch["int8-dynamic"].path)
    alignment = align_tflite(src.path, models.spec)
    faulty = tflite_kernel_transposed(alignment["relu2"].tensor)(src.path, tmp_path / "faulty.tflite")
    result = hop(src, faulty)
    assert (result.verdict, result.first_divergent_layer) == (EXCEEDS, "relu2")
    assert result.localisation["relu2"].unit == "rmse (int8-dynamic floor)"


def test_jax2tf_through_tf2onnx_aligns_and_is_within_noise(models, reference):
    """The same jax2tf graph read back from ONNX (tf2onnx from the LiteRT file): Max with a zero, shape plumbing,
    feature-vector Reshapes before the bias Adds."""
    deployed = models.deploy("jax.onnx", "tflite-tf2onnx", "jax")
    alignment = align_onnx(deployed.path, models.spec)
    check_aligned(alignment)
    assert alignment["relu3"].op == "Max" and alignment["fc1"].op == "Add"
    src = source(models, reference, deployed.path)
    result = localise_hop(src.spec, src.weights, src.x, src.path, "onnx", src.floor,
                          input_layout=deployed.facts["input_layout"])
    assert result.verdict == WITHIN, [(e.name, e.ratio) for e in result.localisation.layers]
    assert all(e.exceeds is False for e in result.localisation.layers)
