"""The shared NHWC layout plan (`dlcompat.frameworks.common.layout`), on real small weights, without a framework.

Round trips must be exact (the plan only moves numbers), and the NHWC side must compute what the
canonical side computes: a dense layer on NHWC-flattened features with the permuted kernel, a batch
norm with permuted statistics, and activations read back in canonical order.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.frameworks.common.layout import nhwc_layout
from dlcompat.zoo import spec as zs
from dlcompat.zoo.registry import build_spec

from .weights import random_weights

#: Flatten -> Dropout -> BatchNorm -> Dense: the NHWC order survives element-wise layers, batch norm included
FLAT_NORM_NET = zs.ModelSpec(
    name="flat_norm_net",
    input_shape=(9, 7, 2),
    num_classes=5,
    layers=(zs.Conv2D("conv", 3, 3), zs.Activation("relu"), zs.Flatten("flatten"), zs.Dropout("drop", 0.5),
            zs.BatchNorm("bn"), zs.Dense("fc", 5)),
)

#: a Flatten whose consumer is a residual block, and one that ends the model: both channel-major
FLAT_RESIDUAL_NET = zs.ModelSpec(
    name="flat_residual_net",
    input_shape=(6, 6, 1),
    num_classes=12,
    layers=(zs.Conv2D("conv", 3, 3, stride=2), zs.Flatten("flatten"),
            zs.Residual("res", body=(zs.Dense("res.fc", 12),), activation="tanh")),
)

SPECS = [build_spec("lenet5", (28, 28, 1), 10), build_spec("resnet20", (32, 32, 3), 10), FLAT_NORM_NET,
         FLAT_RESIDUAL_NET]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_canonical_to_nhwc_and_back_is_exact(spec):
    layout = nhwc_layout(spec)
    for name, value in random_weights(spec, 3).items():
        native = layout.to_native(name, value)
        assert native.shape == layout.native_shape(value.shape), name
        np.testing.assert_array_equal(layout.to_canonical(name, native), value, err_msg=name)


def test_the_rule_permutes_only_a_flatten_that_reaches_a_dense():
    plan = nhwc_layout(FLAT_NORM_NET)
    chw = (3, 7, 5)
    assert plan.nhwc_outputs == dict.fromkeys(("flatten", "drop", "bn"), chw)
    assert (plan.dense_rows, plan.norm_features) == ({"fc": chw}, {"bn": chw})
    assert nhwc_layout(build_spec("lenet5", (28, 28, 1), 10)).dense_rows == {"fc1": (16, 5, 5)}
    residual = nhwc_layout(FLAT_RESIDUAL_NET)
    assert not residual.flattens_nhwc("flatten") and residual.dense_rows == {}


def test_the_nhwc_side_computes_what_the_canonical_side_computes():
    """Feature maps of the spec's shape through flatten, batch norm (inference) and dense, in both layouts."""
    spec = FLAT_NORM_NET
    layout, weights = nhwc_layout(spec), random_weights(spec, 5)
    maps = np.random.default_rng(0).standard_normal((4, 3, 7, 5)).astype(np.float32)  # NCHW, conv's output

    def head(features: np.ndarray, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        normed = (features - w["bn.mean"]) / np.sqrt(w["bn.var"] + np.float32(1e-5)) * w["bn.gamma"] + w["bn.beta"]
        return normed, normed @ w["fc.weight"] + w["fc.bias"]

    canonical_flat = maps.reshape(4, -1)
    nhwc_flat = maps.transpose(0, 2, 3, 1).reshape(4, -1)
    native = {name: layout.to_native(name, value) for name, value in weights.items()}
    normed, logits = head(canonical_flat, {**weights, "fc.weight": weights["fc.weight"].T})
    normed_nhwc, logits_nhwc = head(nhwc_flat, native)
    np.testing.assert_array_equal(layout.activation_to_canonical("bn", normed_nhwc), normed)
    np.testing.assert_array_equal(layout.activation_to_canonical("flatten", nhwc_flat), canonical_flat)
    np.testing.assert_array_equal(layout.activation_to_canonical("conv", maps.transpose(0, 2, 3, 1)), maps)
    np.testing.assert_allclose(logits_nhwc, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layout.activation_to_canonical("fc", logits_nhwc), logits_nhwc)
