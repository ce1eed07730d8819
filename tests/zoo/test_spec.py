"""The zoo: parameter counts against the published figures, and the spec's own consistency checks."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.errors import ConfigError
from dlcompat.zoo.registry import build_spec, model_names
from dlcompat.zoo.spec import Conv2D, Dense, Flatten, ModelSpec, Residual, init_weights

# (model, input shape, trainable parameters, where the figure is published)
PUBLISHED = [
    ("lenet1", (28, 28, 1), 3_246, "DeepXplore's Keras LeNet-1 (Pei et al. 2017), as trained by Guo et al."),
    ("lenet5", (28, 28, 1), 61_706, "LeNet-5 with 28x28 input padded by 2: the commonly quoted 61,706"),
    ("resnet20", (32, 32, 3), 272_474, "He et al. 2016: 0.27M (269,722 with option A + 2,752 for projections)"),
    ("vgg16", (32, 32, 3), 14_728_266, "VGG-16 CIFAR variant with BN (kuangliu/pytorch-cifar): 14.7M"),
]


@pytest.mark.parametrize(("name", "shape", "count", "source"), PUBLISHED)
def test_parameter_counts_match_published_figures(name, shape, count, source):
    assert build_spec(name, shape, 10).parameter_count() == count, source


def test_resnet20_is_027m_as_in_the_paper():
    assert round(build_spec("resnet20", (32, 32, 3), 10).parameter_count() / 1e6, 2) == 0.27


def test_every_registered_model_builds_for_mnist_and_cifar_shapes():
    assert {"lenet1", "lenet5", "resnet20", "vgg16"} <= set(model_names())
    for name in ("lenet1", "lenet5", "resnet20"):
        for shape in ((28, 28, 1), (32, 32, 3)):
            spec = build_spec(name, shape, 10)
            assert spec.output_shapes()[spec.layers[-1].name] == (10,)


def test_lenet5_layer_shapes_are_channel_major():
    shapes = build_spec("lenet5", (28, 28, 1), 10).output_shapes()
    assert shapes["conv1"] == (6, 28, 28)
    assert shapes["pool2"] == (16, 5, 5)
    assert shapes["flatten"] == (400,)


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match="lenet5"):
        build_spec("lenet7", (28, 28, 1), 10)


def test_spec_rejects_duplicate_names_and_bad_residuals():
    dup = ModelSpec("dup", (8, 8, 1), 2, (Conv2D("c", 2, 3), Conv2D("c", 2, 3), Flatten("f"), Dense("d", 2)))
    with pytest.raises(ValueError, match="used twice"):
        dup.weight_shapes()
    bad = ModelSpec("bad", (8, 8, 1), 2, (Residual("r", (Conv2D("c", 3, 3),)), Flatten("f"), Dense("d", 2)))
    with pytest.raises(ValueError, match="adds shapes"):
        bad.weight_shapes()


def test_init_weights_are_seeded_and_match_the_layout():
    spec = build_spec("resnet20", (32, 32, 3), 10)
    a, b, c = init_weights(spec, 0), init_weights(spec, 0), init_weights(spec, 1)
    assert list(a) == list(spec.weight_shapes())
    assert all(a[k].shape == spec.weight_shapes()[k] and a[k].dtype == np.float32 for k in a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["stem.weight"], c["stem.weight"])
    assert np.all(a["stem_bn.var"] == 1) and np.all(a["stem_bn.mean"] == 0)
