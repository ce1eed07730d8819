"""The adapter contract, one suite for every framework of the main environment (Keras 3's habit).

Each framework adapter must pass every test here unchanged; a framework that cannot do something
raises `Unavailable` with the reason (tested as such), never a silent wrong answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.errors import ModelFileError
from dlcompat.frameworks.base import TrainSettings, Unavailable
from dlcompat.frameworks.registry import framework_entry, framework_names, make_adapter
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import init_weights

from .weights import random_weights

MAIN_ENV = [name for name in framework_names() if framework_entry(name).env == "main"]
MNIST = (28, 28, 1)
CIFAR = (32, 32, 3)


@pytest.fixture(scope="module", params=MAIN_ENV)
def adapter(request):
    return make_adapter(request.param, threads=1)


@pytest.fixture(scope="module")
def mnist_x(mnist_small):
    return to_float(mnist_small.test.x[:8]), mnist_small.test.y[:8]


@pytest.mark.parametrize(("model", "shape"), [("lenet1", MNIST), ("lenet5", MNIST), ("resnet20", CIFAR)])
def test_build_starts_from_the_canonical_initialisation(adapter, model, shape):
    spec = build_spec(model, shape, 10)
    got = adapter.get_weights(adapter.build(spec, seed=4))
    expected = init_weights(spec, 4)
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].shape == expected[name].shape, name
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_set_weights_then_get_weights_is_exact(adapter):
    spec = build_spec("resnet20", CIFAR, 10)
    model = adapter.build(spec, seed=0)
    weights = random_weights(spec, 1)
    adapter.set_weights(model, weights)
    got = adapter.get_weights(model)
    assert all(np.array_equal(got[k], weights[k]) for k in weights)


@pytest.mark.parametrize(("model", "shape"), [("lenet5", MNIST), ("resnet20", CIFAR)])
def test_activations_name_every_layer_in_canonical_layout(adapter, model, shape):
    spec = build_spec(model, shape, 10)
    net = adapter.build(spec, seed=0)
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    acts = adapter.activations(net, x)
    expected = spec.output_shapes()
    assert set(acts) == set(expected)
    for name, out_shape in expected.items():
        assert acts[name].shape == (3, *out_shape), name
    last = spec.layers[-1].name
    np.testing.assert_allclose(acts[last], adapter.predict(net, x), atol=1e-5)
    assert adapter.activations(net, x, layers=[last]).keys() == {last}


def test_predictor_computes_the_same_as_predict(adapter, mnist_x):
    spec = build_spec("lenet5", MNIST, 10)
    model = adapter.build(spec, seed=0)
    out = adapter.predictor(model, mnist_x[0][:1])()
    assert out is not None
    assert isinstance(adapter.predict_api, str) and adapter.predict_api


def test_loss_gradient_matches_finite_differences(adapter, mnist_x):
    spec = build_spec("lenet1", MNIST, 10)
    model = adapter.build(spec, seed=0)
    x, y = mnist_x[0][:2].astype(np.float32), mnist_x[1][:2]
    grad = adapter.loss_gradient(model, x, y)
    assert grad.shape == x.shape and grad.dtype == np.float32

    def loss(xx: np.ndarray) -> float:
        logits = adapter.predict(model, xx.astype(np.float32)).astype(np.float64)
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    for flat in np.argsort(np.abs(grad).ravel())[-3:]:
        i = np.unravel_index(flat, grad.shape)
        plus, minus = x.copy(), x.copy()
        plus[i] += 1e-2
        minus[i] -= 1e-2
        assert grad[i] == pytest.approx((loss(plus) - loss(minus)) / 2e-2, rel=0.05, abs=1e-4)


def test_class_gradient_matches_finite_differences_of_the_chosen_logit(adapter):
    """d logits[i, labels[i]] / d x[i], each input its own class (C&W-L2, DeepFool and JSMA follow it).

    On random images: a digit's flat background ties max-pooling windows, where a logit has a kink.
    """
    spec = build_spec("lenet1", MNIST, 10)
    model = adapter.build(spec, seed=0)
    x = np.random.default_rng(0).random((3, *MNIST), dtype=np.float32)
    labels = np.array([3, 0, 7])
    grad = adapter.class_gradient(model, x, labels)
    assert grad.shape == x.shape and grad.dtype == np.float32

    def logit(xx: np.ndarray, i: int) -> float:
        return float(adapter.predict(model, xx.astype(np.float32)).astype(np.float64)[i, labels[i]])

    for flat in np.argsort(np.abs(grad).ravel())[-3:]:
        i = np.unravel_index(flat, grad.shape)
        plus, minus = x.copy(), x.copy()
        plus[i] += 1e-3
        minus[i] -= 1e-3
        assert grad[i] == pytest.approx((logit(plus, i[0]) - logit(minus, i[0])) / 2e-3, rel=0.05, abs=1e-3)
    # one input's gradient is its own: the others' logits do not reach it
    alone = adapter.class_gradient(model, x[1:2], labels[1:2])
    np.testing.assert_allclose(alone, grad[1:2], rtol=1e-4, atol=1e-6 * float(np.abs(grad).max()))


@pytest.mark.parametrize("count", [5, 0])
def test_class_gradients_are_every_class_gradient_at_once(adapter, count):
    """DeepFool's all-class gradient (an adapter may batch it): row i, class c is class_gradient with label c."""
    spec = build_spec("lenet1", MNIST, 10)
    model = adapter.build(spec, seed=0)
    x = np.random.default_rng(1).random((count, *MNIST), dtype=np.float32)
    every = adapter.class_gradients(model, x, 10)
    assert every.shape == (count, 10, *MNIST) and every.dtype == np.float32
    if count:
        one_by_one = np.stack([adapter.class_gradient(model, x, np.full(count, c)) for c in range(10)], axis=1)
        np.testing.assert_allclose(every, one_by_one, rtol=1e-4, atol=1e-6 * float(np.abs(one_by_one).max()))


def test_save_load_round_trip_and_foreign_files(adapter, mnist_x, tmp_path):
    spec = build_spec("lenet5", MNIST, 10)
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, random_weights(spec, 2))
    path = tmp_path / f"model{adapter.native_suffix}"
    adapter.save(model, path)
    again = adapter.load(spec, path)
    np.testing.assert_allclose(adapter.predict(again, mnist_x[0]), adapter.predict(model, mnist_x[0]), atol=1e-6)
    foreign = tmp_path / f"foreign{adapter.native_suffix}"
    foreign.write_bytes(b"this is not a model file")
    with pytest.raises(ModelFileError):
        adapter.load(spec, foreign)


def test_training_lowers_the_loss_and_records_the_curves(adapter, mnist_small):
    spec = build_spec("lenet1", MNIST, 10)
    model = adapter.build(spec, seed=0)
    x, y = to_float(mnist_small.train.x[:512]), mnist_small.train.y[:512]
    events: list[dict] = []
    history = adapter.train(model, spec, (x, y), (x[:64], y[:64]),
                            TrainSettings(epochs=3, batch_size=32, lr=0.02, seed=0), progress=events.append)
    assert len(history.train_loss) == len(history.epoch_time_s) == len(history.val_accuracy) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert [e["epoch"] for e in events] == [1, 2, 3]


def test_exports_are_declared_or_unavailable(adapter, tmp_path, mnist_x):
    spec = build_spec("lenet5", MNIST, 10)
    model = adapter.build(spec, seed=0)
    for fmt in adapter.exports:
        facts = adapter.export(model, spec, fmt, tmp_path / f"m.{fmt}")
        assert facts["tool"] and facts["input_layout"] in ("NCHW", "NHWC")
        assert (tmp_path / f"m.{fmt}").exists()
    with pytest.raises(Unavailable):
        adapter.export(model, spec, "no-such-format", tmp_path / "x")
