"""The quantised hops' floors: the float16 floor measured by re-executing the float64 reference on float16-rounded
weights (as stored, and as stored after batch-norm folding), and the int8 judgement in quantisation steps.

Real CIFAR-10 images (the shared data folder), ResNet-20 with random weights and non-trivial batch-norm statistics;
the float32 floor is the float32 rounding of the reference itself (no framework needed).
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset
from dlcompat.metrics.noise import (
    INT8_FLOOR_STEPS,
    K_NOISE,
    LOGITS,
    WELL_QUANTISED_STEPS,
    NoiseFloor,
    errors_against,
    float16_floor,
    int8_judgement,
    largest_errors,
    rounded_to_float16,
)
from dlcompat.zoo.reference import forward
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights


@pytest.fixture(scope="module")
def resnet(shared_data_dir):
    data = load_dataset("cifar10", shared_data_dir, limit_train=10, limit_test=4, download=False)
    spec = build_spec("resnet20", data.input_shape, data.num_classes)
    weights = random_weights(spec, seed=2)
    x = to_float(data.test.x)
    reference = forward(spec, weights, x)
    w32 = {k: v.astype(np.float32).astype(np.float64) for k, v in weights.items()}
    logits, acts = forward(spec, w32, x.astype(np.float32))
    executions = {"fp32-weights": errors_against(reference, logits.astype(np.float32),
                                                 {k: v.astype(np.float32) for k, v in acts.items()})}
    base = NoiseFloor(largest_errors(executions), {"executions": list(executions)}, executions)
    return spec, weights, x, reference, base


def test_float16_rounding_keeps_every_parameter_a_float16_number_folded_or_not(resnet):
    spec, weights, _, _, _ = resnet
    plain = rounded_to_float16(spec, weights)
    assert all(np.array_equal(v.astype(np.float16).astype(np.float64), v) for v in plain.values())
    folded = rounded_to_float16(spec, weights, folded=True)
    gamma, var = (np.asarray(weights[f"stem_bn.{k}"], np.float64) for k in ("gamma", "var"))
    factor = (gamma / np.sqrt(var + 1e-5)).reshape(-1, 1, 1, 1)
    stored = folded["stem.weight"] * factor  # what a folding converter stores, in float16
    assert np.allclose(stored.astype(np.float16).astype(np.float64), stored, rtol=1e-12, atol=0)
    assert np.array_equal(folded["stem_bn.var"], np.asarray(weights["stem_bn.var"], np.float64))


def test_the_float16_floor_widens_every_layer_by_float16_rounding(resnet):
    spec, weights, x, reference, base = resnet
    wide = float16_floor(base, spec, weights, x, reference)
    assert {"weights-fp16", "weights-fp16-folded", "input-fp16"} <= set(wide.executions)
    ratios = [wide.floor(layer) / base.floor(layer) for layer in base.layers()]
    assert min(ratios) >= 1.0
    assert float(np.median(ratios)) > 100  # float16 rounds ~2^13 x coarser than float32
    assert wide.k == base.k and LOGITS in wide.floors


def test_an_honest_float16_execution_is_within_and_a_fault_is_not(resnet):
    """The reference on the folded float16 weights is one of the floor's executions (within by construction); the
    same with one convolution's kernel transposed kh <-> kw exceeds at that convolution's batch norm."""
    spec, weights, x, reference, base = resnet
    wide = float16_floor(base, spec, weights, x, reference)
    honest = rounded_to_float16(spec, weights, folded=True)
    logits, acts = forward(spec, honest, x)
    assert wide.first_exceeding(errors_against(reference, logits, acts)) is None
    faulty = dict(honest, **{"s2b1.conv1.weight": honest["s2b1.conv1.weight"].transpose(0, 1, 3, 2)})
    logits, acts = forward(spec, faulty, x)
    assert wide.first_exceeding(errors_against(reference, logits, acts)) == "s2b1.conv1"


def test_int8_judgement_in_quantisation_steps():
    assert int8_judgement(WELL_QUANTISED_STEPS) == (WELL_QUANTISED_STEPS / INT8_FLOOR_STEPS, False)
    assert int8_judgement(K_NOISE * INT8_FLOOR_STEPS * 0.99)[1] is False
    assert int8_judgement(K_NOISE * INT8_FLOOR_STEPS * 1.01)[1] is True
    assert int8_judgement(float("nan"))[1] is True
