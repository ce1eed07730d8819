"""The Keras adapter beyond the shared contract: ONNX export, torch.optim semantics, batch norm, names, files."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.errors import ModelFileError
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo import spec as zs
from dlcompat.zoo.registry import build_spec

from .weights import random_weights

MNIST = (28, 28, 1)


@pytest.fixture(scope="module")
def keras_adapter():
    return make_adapter("tensorflow", threads=1)


@pytest.fixture(scope="module")
def torch_adapter():
    return make_adapter("pytorch", threads=1)


@pytest.fixture(scope="module")
def images(mnist_small):
    return to_float(mnist_small.test.x[:64]), mnist_small.test.y[:64]


@pytest.fixture(scope="module")
def train256(mnist_small):
    return to_float(mnist_small.train.x[:256]), mnist_small.train.y[:256]


def test_importing_the_adapter_module_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, dlcompat.frameworks.tensorflow; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_model_is_plain_keras_with_canonical_layer_names(keras_adapter):
    import keras

    spec = build_spec("resnet20", (32, 32, 3), 10)
    model = keras_adapter.build(spec, seed=0)
    assert isinstance(model, keras.Model) and model.count_params() == spec.parameter_count(trainable_only=False)
    names = {layer.name for layer in model.layers}
    assert {layer.name for layer in spec.iter_layers()} <= names  # every spec layer, residual blocks included
    assert not [layer for layer in model.layers if type(layer).__module__.split(".")[0] != "keras"]
    conv = model.get_layer("s2b1.conv1")
    assert conv.padding == "valid" and conv.strides == (2, 2)
    assert isinstance(model.get_layer("s2b1.conv1--pad"), keras.layers.ZeroPadding2D)
    bn = model.get_layer("stem_bn")
    assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)


def test_odd_layer_names_map_reversibly_and_stay_addressable(keras_adapter, torch_adapter):
    from dlcompat.frameworks.tensorflow import canonical_name, keras_name

    for name in ("conv1", "s1b1.conv1", "block/1", "a b", "x--y", "-lead", "é/ü"):
        key = keras_name(name)
        assert canonical_name(key) == name and "/" not in key and "--" not in key
    spec = zs.ModelSpec("odd/net", (8, 8, 1), 3, (
        zs.Conv2D("block/1", 2, 3, padding=1), zs.Activation("a b"), zs.Flatten("flat ten"),
        zs.Dropout("drop/out", 0.25), zs.Dense("head/fc", 3)))
    weights = random_weights(spec, 5)
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    got = keras_adapter.activations(_loaded(keras_adapter, spec, weights), x)
    want = torch_adapter.activations(_loaded(torch_adapter, spec, weights), x)
    assert set(got) == set(want)
    for name in want:  # the dropout after the flatten is in channel-major order too
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)


def _loaded(adapter, spec, weights):
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, weights)
    return model


def test_onnx_export_runs_in_onnxruntime_with_the_keras_logits(keras_adapter, images, tmp_path):
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

    spec = build_spec("lenet5", MNIST, 10)
    model = _loaded(keras_adapter, spec, random_weights(spec, 3))
    facts = keras_adapter.export(model, spec, "onnx", tmp_path / "m.onnx")
    assert facts["input_layout"] == "NHWC" and facts["tool_version"]
    with OnnxRuntimeRunner(tmp_path / "m.onnx", input_layout="NHWC") as runner:
        got = runner.infer(images[0])
        assert runner.info()["providers"] == ["CPUExecutionProvider"]
        single = runner.infer(images[0][:1])  # the batch dimension stays dynamic
    expected = keras_adapter.predict(model, images[0])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(single, expected[:1], atol=1e-5)


@pytest.mark.parametrize(("optimizer", "lr", "weight_decay", "epochs", "tol"), [
    ("sgd", 0.05, 5e-4, 2, 1e-6),  # measured 1.5e-7 (max |Δw|, weights move by up to 0.36)
    ("adam", 1e-3, 1e-4, 1, 1e-5),  # measured 1.6e-6 (weights move by up to 8e-3)
])
def test_training_steps_exactly_like_torch_optim(keras_adapter, torch_adapter, train256, optimizer, lr,
                                                 weight_decay, epochs, tol):
    """Same canonical init, same 256 real images, same batch order: the same weights, within float32 rounding.

    A different data order or Keras' own decoupled weight decay or Adam epsilon would differ by far more.
    """
    spec = build_spec("lenet5", MNIST, 10)
    settings = TrainSettings(epochs=epochs, batch_size=32, optimizer=optimizer, lr=lr, momentum=0.9,
                             weight_decay=weight_decay, seed=3)
    x, y = train256
    models = {}
    histories = {}
    for adapter in (keras_adapter, torch_adapter):
        models[adapter.name] = adapter.build(spec, seed=1)
        histories[adapter.name] = adapter.train(models[adapter.name], spec, (x, y), (x[:64], y[:64]), settings)
    got = keras_adapter.get_weights(models["tensorflow"])
    want = torch_adapter.get_weights(models["pytorch"])
    start = keras_adapter.get_weights(keras_adapter.build(spec, seed=1))
    assert max(float(np.abs(want[k] - start[k]).max()) for k in want) > 100 * tol  # it did train
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=tol, err_msg=name)
    np.testing.assert_allclose(histories["tensorflow"].train_loss, histories["pytorch"].train_loss, rtol=1e-5)
    assert histories["tensorflow"].val_accuracy == histories["pytorch"].val_accuracy


def test_batch_norm_running_statistics_follow_torch_momentum(keras_adapter, torch_adapter, train256):
    """One step: the running mean moves as torch's does (momentum = weight of the new batch statistic).

    The running variance differs by Keras' own choice: it averages the biased batch variance, torch the
    unbiased one, so (var - (1 - m)) differs by exactly the factor (n - 1) / n, n = batch * H * W.
    """
    momentum = 0.3
    spec = zs.ModelSpec("bn", MNIST, 10, (
        zs.Conv2D("conv", 4, 3, padding=1), zs.BatchNorm("bn", momentum=momentum), zs.Activation("relu"),
        zs.GlobalAvgPool("gap"), zs.Dense("fc", 10)))
    x, y = train256[0][:64], train256[1][:64]
    settings = TrainSettings(epochs=1, batch_size=64, lr=0.01, seed=0)
    stats = {}
    for adapter in (keras_adapter, torch_adapter):
        model = adapter.build(spec, seed=2)
        adapter.train(model, spec, (x, y), (x[:8], y[:8]), settings)
        stats[adapter.name] = adapter.get_weights(model)
    got, want = stats["tensorflow"], stats["pytorch"]
    assert float(np.abs(want["bn.mean"]).min()) > 1e-3  # it moved from zero
    np.testing.assert_allclose(got["bn.mean"], want["bn.mean"], rtol=1e-5, atol=1e-7)
    n = 64 * 28 * 28
    np.testing.assert_allclose(got["bn.var"] - (1 - momentum), (want["bn.var"] - (1 - momentum)) * (n - 1) / n,
                               rtol=1e-4)


def test_training_is_bit_for_bit_reproducible_with_a_fixed_seed(keras_adapter, train256):
    spec = build_spec("lenet1", MNIST, 10)
    x, y = train256
    weights = []
    for _ in range(2):
        model = keras_adapter.build(spec, seed=5)
        keras_adapter.train(model, spec, (x, y), (x[:10], y[:10]), TrainSettings(epochs=1, batch_size=32, seed=5))
        weights.append(keras_adapter.get_weights(model))
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_saved_file_loads_in_plain_keras_after_training(keras_adapter, train256, tmp_path):
    """`save` drops the compiled optimizer (a dlcompat subclass), so plain Keras loads it safely."""
    import keras

    spec = build_spec("lenet1", MNIST, 10)
    model = keras_adapter.build(spec, seed=0)
    x, y = train256
    keras_adapter.train(model, spec, (x[:64], y[:64]), (x[:8], y[:8]), TrainSettings(epochs=1, seed=0))
    path = tmp_path / "trained.keras"
    keras_adapter.save(model, path)
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(plain.predict(x[:8], verbose=0), keras_adapter.predict(model, x[:8]))
    other = tmp_path / "artifact"  # the artifact store may drop the suffix: still a .keras file inside
    keras_adapter.save(model, other)
    np.testing.assert_array_equal(keras_adapter.predict(keras_adapter.load(spec, other), x[:8]),
                                  keras_adapter.predict(model, x[:8]))


def test_load_refuses_other_architectures_and_unsafe_files(keras_adapter, tmp_path):
    import keras

    lenet1 = build_spec("lenet1", MNIST, 10)
    keras_adapter.save(keras_adapter.build(build_spec("lenet5", MNIST, 10), seed=0), tmp_path / "lenet5.keras")
    with pytest.raises(ModelFileError, match="not a Keras model of lenet1"):
        keras_adapter.load(lenet1, tmp_path / "lenet5.keras")
    inputs = keras.Input(MNIST)
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError):  # a Lambda layer would deserialise Python bytecode
        keras_adapter.load(lenet1, tmp_path / "lambda.keras")


def test_predictor_returns_the_logits_of_predict_and_follows_new_weights(keras_adapter, torch_adapter, images):
    spec = build_spec("lenet5", MNIST, 10)
    model = _loaded(keras_adapter, spec, random_weights(spec, 1))
    run = keras_adapter.predictor(model, images[0][:4])
    np.testing.assert_allclose(np.asarray(run()), keras_adapter.predict(model, images[0][:4]), atol=1e-6)
    weights = random_weights(spec, 2)  # the compiled graph reads the variables, not a snapshot of them
    keras_adapter.set_weights(model, weights)
    expected = torch_adapter.predict(_loaded(torch_adapter, spec, weights), images[0][:4])
    np.testing.assert_allclose(np.asarray(run()), expected, atol=1e-5)


def test_class_gradient_matches_torch(keras_adapter, torch_adapter, images):
    """d logit[label] / d input, per image (C&W, DeepFool): same weights, same gradient as PyTorch's adapter."""
    spec = build_spec("lenet5", MNIST, 10)
    weights = random_weights(spec, 4)
    x, labels = images[0][:8], np.arange(8) % 10
    got = keras_adapter.class_gradient(_loaded(keras_adapter, spec, weights), x, labels)
    want = torch_adapter.class_gradient(_loaded(torch_adapter, spec, weights), x, labels)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


_GRADIENT_SCRIPT = """
import sys, numpy as np
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo.registry import build_spec
data = np.load(sys.argv[1])
adapter = make_adapter("tensorflow", threads=1)
spec = build_spec("lenet5", (28, 28, 1), 10)
if sys.argv[3] == "train-first":  # what a worker that trained a model before this job has done
    other = adapter.build(spec, seed=1)
    adapter.train(other, spec, (data["x"][:64], data["y"][:64]), (data["x"][:0], data["y"][:0]),
                  TrainSettings(epochs=1, batch_size=32, optimizer="sgd", lr=0.01, seed=1))
model = adapter.load(spec, sys.argv[2])
np.save(sys.argv[4], adapter.loss_gradient(model, data["x"][:100], data["y"][:100]))
"""


def test_gradients_do_not_depend_on_what_the_worker_ran_before(keras_adapter, train256, tmp_path):
    """Op determinism is process-wide: a job's gradients must be the same in a fresh worker and in one that
    trained a model first (an attack job's figures used to change with the worker's history)."""
    import subprocess
    import sys

    spec = build_spec("lenet5", (28, 28, 1), 10)
    model = keras_adapter.build(spec, seed=0)
    keras_adapter.save(model, tmp_path / "model.keras")
    x, y = train256
    np.savez(tmp_path / "data.npz", x=x, y=y)
    script = tmp_path / "gradient.py"
    script.write_text(_GRADIENT_SCRIPT)
    for how in ("fresh", "train-first"):
        subprocess.run([sys.executable, str(script), str(tmp_path / "data.npz"), str(tmp_path / "model.keras"), how,
                        str(tmp_path / f"{how}.npy")], check=True, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "fresh.npy"), np.load(tmp_path / "train-first.npy"))
