"""The PyTorch adapter against the spec: weights, activations, gradients, save/load, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.errors import ModelFileError
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import init_weights


@pytest.fixture(scope="module")
def adapter():
    return make_adapter("pytorch")


@pytest.fixture(scope="module")
def images(mnist_small):
    return mnist_small.test.x[:16].astype(np.float32) / 255.0, mnist_small.test.y[:16]


@pytest.mark.parametrize(("name", "shape"), [("lenet1", (28, 28, 1)), ("lenet5", (28, 28, 1)),
                                             ("resnet20", (32, 32, 3)), ("vgg16", (32, 32, 3))])
def test_build_holds_the_canonical_weights_of_every_model(adapter, name, shape):
    spec = build_spec(name, shape, 10)
    model = adapter.build(spec, seed=3)
    expected = init_weights(spec, 3)
    got = adapter.get_weights(model)
    assert list(got) == list(expected)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert sum(p.numel() for p in model.parameters()) == spec.parameter_count()
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert adapter.predict(model, x).shape == (2, 10)


def test_activations_follow_the_spec_shapes_and_end_in_the_logits(adapter, images):
    spec = build_spec("lenet5", (28, 28, 1), 10)
    model = adapter.build(spec, seed=0)
    acts = adapter.activations(model, images[0])
    for name, shape in spec.output_shapes().items():
        assert acts[name].shape == (16, *shape), name
    np.testing.assert_allclose(acts["fc3"], adapter.predict(model, images[0]), rtol=0, atol=1e-6)


def test_lenet5_forward_matches_a_numpy_reference(adapter, images):
    """The canonical layout, checked by hand: conv OIHW, channel-major flatten, dense (out, in)."""
    spec = build_spec("lenet5", (28, 28, 1), 10)
    model = adapter.build(spec, seed=1)
    w = adapter.get_weights(model)
    x = images[0][:4].transpose(0, 3, 1, 2).astype(np.float64)

    def conv(x, weight, bias, pad):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        k = weight.shape[-1]
        win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N C H W k k
        return np.einsum("nchwij,ocij->nohw", win, weight) + bias[None, :, None, None]

    def pool(x):
        n, c, h, w_ = x.shape
        return x.reshape(n, c, h // 2, 2, w_ // 2, 2).max(axis=(3, 5))

    h = pool(np.maximum(conv(x, w["conv1.weight"], w["conv1.bias"], 2), 0))
    h = pool(np.maximum(conv(h, w["conv2.weight"], w["conv2.bias"], 0), 0)).reshape(4, -1)
    h = np.maximum(h @ w["fc1.weight"].T + w["fc1.bias"], 0)
    h = np.maximum(h @ w["fc2.weight"].T + w["fc2.bias"], 0)
    logits = h @ w["fc3.weight"].T + w["fc3.bias"]
    np.testing.assert_allclose(adapter.predict(model, images[0][:4]), logits, atol=1e-4)


def test_loss_gradient_matches_finite_differences(adapter, images):
    spec = build_spec("lenet1", (28, 28, 1), 10)
    model = adapter.build(spec, seed=0)
    x, y = images[0][:2].astype(np.float32), images[1][:2]
    grad = adapter.loss_gradient(model, x, y)
    assert grad.shape == x.shape
    import torch

    def loss(xx):
        logits = adapter.predict(model, xx.astype(np.float32)).astype(np.float64)
        return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)))

    idx = np.unravel_index(np.argsort(np.abs(grad).ravel())[-3:], grad.shape)
    for i in zip(*idx, strict=True):
        eps = 1e-2
        plus, minus = x.copy(), x.copy()
        plus[i] += eps
        minus[i] -= eps
        assert grad[i] == pytest.approx((loss(plus) - loss(minus)) / (2 * eps), rel=0.05, abs=1e-4)


def test_save_load_round_trip_and_refuses_foreign_files(adapter, images, tmp_path):
    spec = build_spec("lenet5", (28, 28, 1), 10)
    model = adapter.build(spec, seed=2)
    adapter.save(model, tmp_path / "m.pt")
    again = adapter.load(spec, tmp_path / "m.pt")
    np.testing.assert_array_equal(adapter.predict(model, images[0]), adapter.predict(again, images[0]))
    (tmp_path / "bad.pt").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a PyTorch state dict"):
        adapter.load(spec, tmp_path / "bad.pt")
    # a pickled object that is not a tensor dict must not be unpickled (weights_only=True)
    import torch

    torch.save({"evil": object()}, tmp_path / "obj.pt")
    with pytest.raises(ModelFileError):
        adapter.load(spec, tmp_path / "obj.pt")


@pytest.mark.parametrize("variant", ["dynamo", "torchscript"])
def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(adapter, images, tmp_path, variant):
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

    spec = build_spec("lenet5", (28, 28, 1), 10)
    model = adapter.build(spec, seed=0)
    facts = adapter.export(model, spec, "onnx", tmp_path / "m.onnx", variant=variant)
    assert facts["input_layout"] == "NCHW"
    with OnnxRuntimeRunner(tmp_path / "m.onnx", input_layout="NCHW") as runner:
        got = runner.infer(images[0])
        assert runner.info()["providers"] == ["CPUExecutionProvider"]
    np.testing.assert_allclose(got, adapter.predict(model, images[0]), atol=1e-5)
