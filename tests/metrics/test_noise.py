"""The measured noise floor: positive per layer, not crossed by a benign cross-framework hop, crossed by a fault at
the faulty layer and not before it; quantisation steps of a well-quantised tensor are 1/sqrt(12).

Real MNIST and CIFAR-10 images (the shared data folder), random weights with non-trivial batch-norm statistics.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset
from dlcompat.metrics.noise import (
    K_NOISE,
    LOGITS,
    WELL_QUANTISED_STEPS,
    NoiseFloor,
    TensorError,
    errors_against,
    measure_noise_floor,
    quantisation_steps,
    run_execution,
    tensor_error,
)
from dlcompat.zoo.reference import forward
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights

IMAGES = 16


@pytest.fixture(scope="module")
def lenet(shared_data_dir):
    pytest.importorskip("torch")
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    data = load_dataset("mnist", shared_data_dir, limit_train=10, limit_test=IMAGES, download=False)
    spec = build_spec("lenet5", data.input_shape, data.num_classes)
    weights = random_weights(spec, seed=5)
    x = to_float(data.test.x)
    adapter = PyTorchAdapter(threads=1)
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, weights)
    reference = forward(spec, weights, x)
    floor = measure_noise_floor(adapter, model, spec, weights, x, reference=reference, seed=0)
    return spec, weights, x, reference, adapter, floor


def test_the_floor_is_positive_and_finite_at_every_layer(lenet):
    _, _, _, reference, adapter, floor = lenet
    assert set(floor.layers()) == {*reference[1], LOGITS}
    for layer in floor.layers():
        raw = floor.floors[layer].rmse
        assert 0 < raw < 1e-4 and math.isfinite(floor.floors[layer].max_abs), layer
        assert floor.floor(layer) >= raw
    method = floor.method
    assert method["executions"][:2] == [f"batch{IMAGES}", "batch1"] and "threads=2" in method["executions"]
    assert method["images"] == IMAGES and method["framework"] == "pytorch" and method["model"] == "lenet5"
    assert adapter.threads_in_effect()["intra_op_threads"] == 1  # the 2-thread execution put the threads back
    again = NoiseFloor.from_dict(json.loads(json.dumps(floor.to_dict())))
    assert again.floors == floor.floors and again.k == floor.k == K_NOISE


def test_a_benign_cross_framework_hop_stays_under_k_floors(lenet):
    pytest.importorskip("tensorflow")
    from dlcompat.frameworks.tensorflow import KerasAdapter

    spec, weights, x, reference, adapter, torch_floor = lenet
    keras = KerasAdapter(threads=1)
    keras_model = keras.build(spec, seed=0)
    keras.set_weights(keras_model, weights)
    layers = [name for name in torch_floor.layers() if name != LOGITS]
    keras_errors = errors_against(reference, *run_execution(keras, keras_model, x, layers))
    judged = torch_floor.judge(keras_errors)
    assert set(judged) == set(torch_floor.layers())
    assert not any(v["exceeds"] for v in judged.values()), judged
    # and the other way round, against Keras's own (tighter: no thread or kernel switch) floor
    keras_floor = measure_noise_floor(keras, keras_model, spec, weights, x, layers=layers, reference=reference)
    assert "threads=2" in keras_floor.method["skipped"] and "kernels" in keras_floor.method["skipped"]
    torch_errors = errors_against(reference, *run_execution(adapter, _with_weights(adapter, spec, weights), x, layers))
    assert keras_floor.first_exceeding(torch_errors) is None, keras_floor.judge(torch_errors)


def _with_weights(adapter, spec, weights):
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, weights)
    return model


def test_a_transposed_kernel_exceeds_noise_at_its_layer_and_not_before(lenet):
    spec, weights, x, reference, adapter, floor = lenet
    faulty = dict(weights)
    faulty["conv2.weight"] = np.ascontiguousarray(weights["conv2.weight"].transpose(0, 1, 3, 2))
    errors = errors_against(reference, *run_execution(adapter, _with_weights(adapter, spec, faulty), x,
                                                      list(reference[1])))
    assert floor.first_exceeding(errors) == "conv2"
    judged = floor.judge(errors)
    assert all(not judged[name]["exceeds"] for name in ("conv1", "relu1", "pool1"))
    assert judged["conv2"]["ratio"] > 1000 * K_NOISE and judged[LOGITS]["exceeds"]


def test_a_changed_batch_norm_eps_exceeds_noise_at_that_layer_and_not_before(shared_data_dir):
    pytest.importorskip("torch")
    from dlcompat.frameworks.pytorch import PyTorchAdapter

    data = load_dataset("cifar10", shared_data_dir, limit_train=10, limit_test=4, download=False)
    spec = build_spec("resnet20", data.input_shape, data.num_classes)
    weights = random_weights(spec, seed=2)
    x = to_float(data.test.x)
    adapter = PyTorchAdapter(threads=1)
    reference = forward(spec, weights, x)
    layers = ["stem", "stem_bn", "stem_relu", "s1b1.conv1", "s1b1.bn1", "s1b1"]
    floor = measure_noise_floor(adapter, _with_weights(adapter, spec, weights), spec, weights, x, layers=layers,
                                reference=reference, threads=())
    bad_spec = dataclasses.replace(spec, layers=_replace(spec.layers, "s1b1.bn1", 1e-2))
    assert [layer.eps for layer in _flat(bad_spec.layers) if layer.name == "s1b1.bn1"] == [1e-5 + 1e-2]
    errors = errors_against(reference, *run_execution(adapter, _with_weights(adapter, bad_spec, weights), x, layers))
    assert floor.first_exceeding(errors) == "s1b1.bn1", floor.judge(errors)
    assert floor.judge(errors)["s1b1"]["exceeds"]


def _flat(layers):
    for layer in layers:
        yield layer
        for part in ("body", "shortcut"):
            yield from _flat(getattr(layer, part, None) or ())


def _replace(layers, name, delta):
    out = []
    for layer in layers:
        if getattr(layer, "name", None) == name:
            layer = dataclasses.replace(layer, eps=layer.eps + delta)
        elif hasattr(layer, "body"):
            layer = dataclasses.replace(layer, body=tuple(_replace(layer.body, name, delta)),
                                        shortcut=tuple(_replace(layer.shortcut or (), name, delta)))
        out.append(layer)
    return tuple(out)


def test_a_uniformly_quantised_tensor_is_one_over_root_twelve_steps():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3.0, 3.0, size=(64, 8, 16, 16))
    scale = 6.0 / 255
    q = np.round(x / scale) * scale
    assert quantisation_steps(q, x, scale) == pytest.approx(WELL_QUANTISED_STEPS, rel=0.01)
    per_channel = np.linspace(0.01, 0.05, 8).reshape(1, 8, 1, 1)
    qc = np.round(x / per_channel) * per_channel
    assert quantisation_steps(qc, x, per_channel) == pytest.approx(WELL_QUANTISED_STEPS, rel=0.01)
    assert quantisation_steps(np.clip(q, -1, 1), x, scale) > 10 * WELL_QUANTISED_STEPS  # clipping is not rounding
    with pytest.raises(ValueError, match="positive"):
        quantisation_steps(q, x, 0.0)


def test_tensor_error_statistics_and_verdicts_on_known_values():
    ref = np.array([[3.0, 4.0], [0.0, 0.0]])
    err = tensor_error(ref + np.array([[0.0, 0.0], [0.0, 1.0]]), ref)
    assert err == TensorError(max_abs=1.0, rel_l2=0.2, rmse=0.5, ref_rms=2.5, n=4)
    assert tensor_error(np.zeros(3), np.zeros(3)).rel_l2 == 0
    assert tensor_error(np.ones(3), np.zeros(3)).rel_l2 == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        tensor_error(np.zeros(3), np.zeros(4))
    floor = NoiseFloor(floors={"a": TensorError(1e-6, 1e-6, 1e-6, 1.0, 4), "z": TensorError(0, 0, 0, 0.0, 4)},
                       method={}, k=3.0)
    assert not floor.exceeds("a", 3e-6) and floor.exceeds("a", 3.1e-6) and floor.exceeds("a", float("nan"))
    assert floor.exceeds("z", 1e-30) and not floor.exceeds("z", 0.0)  # an all-zero layer: anything nonzero is news
    with pytest.raises(KeyError, match="no noise floor"):
        floor.floor("b")
