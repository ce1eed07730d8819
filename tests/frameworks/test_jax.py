"""The JAX/Flax adapter: what is specific to JAX, beyond the shared contract and parity suites.

optax and Flax are set up to compute what torch.optim and torch.nn compute, so training from the same
canonical weights on the same real images, in the same batch order, must end in PyTorch's weights.
Measured here (x86 CPU, float32): LeNet-5 SGD + momentum + weight decay, one epoch of 256 MNIST images,
max |Δw| 1.2e-7; LeNet-1 Adam + weight decay 1.3e-7; the batch-norm network below, 2 epochs on 52
CIFAR-10 images with a partial last batch, 8e-7 on weights and 5e-6 (relative 5e-6) on running statistics
of magnitude up to 7. The tolerances leave a factor of 4 or more; the semantics they guard are far coarser
(torch's unbiased running variance is 4b/(4b-1) times Flax's biased one in `head_bn`: 3.2% for the
batches of 8, 6.7% for the last batch of 4).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset
from dlcompat.errors import ModelFileError
from dlcompat.frameworks.base import TrainSettings, Unavailable
from dlcompat.frameworks.registry import make_adapter
from dlcompat.zoo import spec as zs
from dlcompat.zoo.registry import build_spec

from .weights import random_weights

TRAIN_ATOL = 5e-6
TRAIN_RTOL = 5e-5
MNIST = (28, 28, 1)

#: batch norm everywhere torch's semantics could differ: a residual block with a projection shortcut, and a
#: head whose 2x2 maps make n = 4 x batch, so torch's unbiased running variance is 4b/(4b-1) times Flax's
BN_NET = zs.ModelSpec(
    name="bn_net",
    input_shape=(32, 32, 3),
    num_classes=10,
    layers=(
        zs.Conv2D("stem", 8, 3, stride=2, padding=1, bias=False),
        zs.BatchNorm("stem_bn"),
        zs.Activation("stem_relu"),
        zs.Residual(
            "block",
            body=(zs.Conv2D("block.conv1", 16, 3, stride=2, padding=1, bias=False), zs.BatchNorm("block.bn1"),
                  zs.Activation("block.relu1"), zs.Conv2D("block.conv2", 16, 3, padding=1, bias=False),
                  zs.BatchNorm("block.bn2", momentum=0.3)),
            shortcut=(zs.Conv2D("block.proj", 16, 1, stride=2, bias=False), zs.BatchNorm("block.proj_bn")),
        ),
        zs.MaxPool("pool", 4),
        zs.Conv2D("head", 16, 1),
        zs.BatchNorm("head_bn", eps=1e-3, momentum=0.5),
        zs.Activation("head_relu"),
        zs.Flatten("flatten"),
        zs.Dense("fc", 10),
    ),
)

#: dropout between a Flatten and its Dense: the NHWC flatten order must survive element-wise layers
DROPOUT_NET = zs.ModelSpec(
    name="dropout_net",
    input_shape=MNIST,
    num_classes=10,
    layers=(zs.Conv2D("conv", 4, 5, stride=2), zs.Activation("relu"), zs.MaxPool("pool", 2), zs.Flatten("flatten"),
            zs.Dropout("drop1", 0.5), zs.Activation("tanh", "tanh"), zs.Dense("fc1", 32), zs.Activation("relu2"),
            zs.Dropout("drop2", 0.25), zs.Dense("fc2", 10)),
)

#: a Flatten whose consumer is not a Dense (a residual over features): it must flatten channel-major
FLAT_RESIDUAL_NET = zs.ModelSpec(
    name="flat_residual_net",
    input_shape=(6, 6, 1),
    num_classes=10,
    layers=(zs.Conv2D("conv", 3, 3, stride=2), zs.Activation("relu"), zs.Flatten("flatten"),
            zs.Residual("res", body=(zs.Dense("res.fc", 12),), activation="tanh"), zs.Dense("fc", 10)),
)


@pytest.fixture(scope="module")
def adapter():
    return make_adapter("jax")


@pytest.fixture(scope="module")
def torch_adapter():
    return make_adapter("pytorch")


@pytest.fixture(scope="module")
def mnist_256(mnist_small):
    return to_float(mnist_small.train.x[:256]), mnist_small.train.y[:256]


@pytest.fixture(scope="module")
def cifar_52(shared_data_dir):
    data = load_dataset("cifar10", shared_data_dir, limit_train=52, limit_test=4, download=False)
    return to_float(data.train.x), data.train.y


def _train_both(adapter, torch_adapter, spec, data, settings):
    out = []
    for framework in (adapter, torch_adapter):
        model = framework.build(spec, seed=0)
        history = framework.train(model, spec, data, (data[0][:16], data[1][:16]), settings)
        out.append((framework.get_weights(model), history))
    return out


@pytest.mark.parametrize(
    ("model", "settings"),
    [
        ("lenet5", TrainSettings(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                                 seed=3)),
        ("lenet1", TrainSettings(epochs=1, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=1e-4, seed=3)),
    ],
)
def test_one_epoch_on_real_mnist_ends_in_pytorchs_weights(adapter, torch_adapter, mnist_256, model, settings):
    """Optimiser semantics (momentum, coupled weight decay, Adam's eps) and the batch order, against torch.optim."""
    spec = build_spec(model, MNIST, 10)
    (got, hist_jax), (want, hist_torch) = _train_both(adapter, torch_adapter, spec, mnist_256, settings)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TRAIN_RTOL, atol=TRAIN_ATOL, err_msg=name)
    assert hist_jax.train_loss == pytest.approx(hist_torch.train_loss, abs=1e-5)
    assert hist_jax.val_accuracy == hist_torch.val_accuracy


def test_batch_norm_training_ends_in_pytorchs_weights_and_running_stats(adapter, torch_adapter, cifar_52):
    """Batch statistics in training, torch's running mean and unbiased running variance, momentum conversion."""
    settings = TrainSettings(epochs=2, batch_size=8, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4,
                             seed=1)
    (got, _), (want, _) = _train_both(adapter, torch_adapter, BN_NET, cifar_52, settings)
    initial = zs.init_weights(BN_NET, 0)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TRAIN_RTOL, atol=TRAIN_ATOL, err_msg=name)
    # the running statistics moved, so the comparison above tests their update rule
    assert not np.allclose(want["head_bn.var"], initial["head_bn.var"], atol=0.05)


def test_batch_norm_folds_the_unbiased_variance_and_normalises_with_the_biased_one(adapter):
    import jax.numpy as jnp

    from dlcompat.frameworks.jax import _flax

    bn = _flax().TorchBatchNorm(3, momentum=0.9, epsilon=1e-5, use_fast_variance=False, rngs=_flax().nnx.Rngs(0))
    x = np.random.default_rng(0).normal(2.0, 3.0, (4, 2, 2, 3)).astype(np.float32)
    y = np.asarray(bn(jnp.asarray(x), use_running_average=False))
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(y.reshape(-1, 3), (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5), atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.1 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.var[...]), 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-5)


def test_the_train_step_compiles_once_per_batch_shape(adapter, mnist_256):
    """100 images in batches of 32: one compile for 32, one for the last 4, and none in a second run."""
    import jax.monitoring

    from dlcompat.frameworks.jax import _program

    spec = build_spec("lenet1", MNIST, 10)
    x, y = mnist_256[0][:100], mnist_256[1][:100]
    # an optimiser no other test compiled (the rate is optimiser state, so the momentum makes it new)
    settings = TrainSettings(epochs=3, batch_size=32, lr=0.0123, momentum=0.8123, seed=0)
    compiles: list[str] = []

    def listener(event: str, _seconds: float, **_kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    model = adapter.build(spec, seed=0)
    adapter.train(model, spec, (x, y), (x[:10], y[:10]), settings)
    step = _program(model)[0].train_step(settings)[1]
    assert step._cache_size() == 2  # three epochs, seven steps of 32 and three of 4
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        again = adapter.build(spec, seed=1)
        adapter.train(again, spec, (x, y), (x[:10], y[:10]), TrainSettings(**{**settings.__dict__, "seed": 1}))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []  # same structure, same optimiser: nothing recompiles, not even for a new seed
    assert step._cache_size() == 2


def test_dropout_is_seeded_and_off_at_inference(adapter, mnist_256):
    x, y = mnist_256[0][:96], mnist_256[1][:96]
    runs = {}
    for seed in (5, 5, 6):
        model = adapter.build(DROPOUT_NET, seed=0)
        adapter.train(model, DROPOUT_NET, (x, y), (x[:0], y[:0]), TrainSettings(epochs=1, batch_size=16, seed=seed))
        runs.setdefault(seed, []).append(adapter.get_weights(model))
    assert all(np.array_equal(runs[5][0][k], runs[5][1][k]) for k in runs[5][0])
    assert not np.array_equal(runs[5][0]["fc1.weight"], runs[6][0]["fc1.weight"])
    acts = adapter.activations(model, x[:4])
    np.testing.assert_array_equal(acts["drop1"], acts["flatten"])
    np.testing.assert_array_equal(adapter.predict(model, x[:4]), adapter.predict(model, x[:4]))


@pytest.mark.parametrize("spec", [DROPOUT_NET, FLAT_RESIDUAL_NET], ids=lambda s: s.name)
def test_flatten_layouts_compute_what_pytorch_computes(adapter, torch_adapter, spec):
    """NHWC flatten with permuted dense rows, through dropout and activations; channel-major otherwise."""
    weights = random_weights(spec, 3)
    x = np.random.default_rng(1).random((5, *spec.input_shape), dtype=np.float32)
    ours, theirs = adapter.build(spec, 0), torch_adapter.build(spec, 0)
    adapter.set_weights(ours, weights)
    torch_adapter.set_weights(theirs, weights)
    assert all(np.array_equal(v, weights[k]) for k, v in adapter.get_weights(ours).items())
    got, want = adapter.activations(ours, x), torch_adapter.activations(theirs, x)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)


def test_class_gradient_matches_pytorch(adapter, torch_adapter, mnist_256):
    spec = build_spec("lenet5", MNIST, 10)
    weights = random_weights(spec, 4)
    x, labels = mnist_256[0][:4], np.array([3, 0, 9, 3])
    got = []
    for framework in (adapter, torch_adapter):
        model = framework.build(spec, seed=0)
        framework.set_weights(model, weights)
        got.append(framework.class_gradient(model, x, labels))
    assert got[0].shape == x.shape and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], got[1], rtol=0, atol=1e-5 * np.abs(got[1]).max())


def test_attack_gradients_and_predictions_compile_once_per_bucket_and_equal_the_unpadded_ones(adapter, mnist_256):
    """ART's attacks ask for every batch size as their active sets shrink (DeepFool, JSMA); each size used to
    compile anew. Sizes 65-128 share one compiled function, and the padded rows change nothing in the real ones."""
    import jax
    import optax

    from dlcompat.frameworks.jax import _program

    spec = build_spec("lenet5", MNIST, 10)
    model = adapter.build(spec, seed=7)
    program, params, rest = _program(model)
    x, y = mnist_256[0][:128], mnist_256[1][:128]

    def mean_loss(xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(program.merge(params, rest)(xb), yb).mean()

    compiled = []  # after the first size, the bucket's: what other tests in this process compiled stays apart
    for n in (128, 101, 77, 65):
        expected = np.asarray(jax.grad(mean_loss)(x[:n], y[:n].astype(np.int32)))
        got = adapter.loss_gradient(model, x[:n], y[:n])
        assert got.shape == x[:n].shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * np.abs(expected).max())
        picked = np.asarray(jax.grad(lambda xb, n=n: program.merge(params, rest)(xb)[np.arange(n), y[:n]].sum())(
            x[:n]))
        np.testing.assert_allclose(adapter.class_gradient(model, x[:n], y[:n]), picked, rtol=0,
                                   atol=1e-6 * np.abs(picked).max())
        np.testing.assert_allclose(adapter.predict(model, x[:n], batch_size=128),
                                   np.asarray(program.forward(params, rest, x[:n])), rtol=0, atol=1e-5)
        compiled.append((program.input_gradient._cache_size(), program.class_gradient._cache_size()))
    assert compiled[1:] == compiled[:1] * 3  # sizes 101, 77 and 65 compiled nothing new
    assert len(adapter.loss_gradient(model, x[:0], y[:0])) == 0


def test_layers_are_addressable_by_their_canonical_names(adapter):
    spec = build_spec("resnet20", (32, 32, 3), 10)
    model = adapter.build(spec, seed=2)
    conv = model.layers["s2b1.proj"]
    assert tuple(conv.kernel[...].shape) == (1, 1, 16, 32)  # HWIO
    np.testing.assert_array_equal(np.asarray(conv.kernel[...]).transpose(3, 2, 0, 1),
                                  zs.init_weights(spec, 2)["s2b1.proj.weight"])
    assert model.layers["s1b1.bn1"].momentum == pytest.approx(0.9)  # Flax's convention for torch's 0.1


def test_save_writes_msgpack_and_refuses_other_models_and_pickles(adapter, tmp_path):
    import pickle

    lenet5 = build_spec("lenet5", MNIST, 10)
    model = adapter.build(lenet5, seed=0)
    path = tmp_path / "m.msgpack"
    adapter.save(model, path)
    assert path.read_bytes()[:1] != b"\x80"  # not a pickle
    with pytest.raises(ModelFileError, match="not a Flax model file of lenet1"):
        adapter.load(build_spec("lenet1", MNIST, 10), path)
    (tmp_path / "obj.msgpack").write_bytes(pickle.dumps({"format": "dlcompat/flax-nnx-state"}))
    with pytest.raises(ModelFileError, match="pass a file written by the jax adapter"):
        adapter.load(lenet5, tmp_path / "obj.msgpack")
    with pytest.raises(Unavailable, match="jax2tf"):
        adapter.export(model, lenet5, "onnx", tmp_path / "m.onnx")


def test_import_is_lazy_and_the_runtime_is_the_cpu_with_the_thread_budget():
    """One intra-op thread for threads=1, and no process-wide side effect: no pinned thread, no leaked flag."""
    code = (
        "import os, sys\n"
        "import dlcompat.frameworks.jax as m\n"
        "assert 'jax' not in sys.modules and 'flax' not in sys.modules\n"
        "mask = os.sched_getaffinity(0)\n"
        "a = m.FlaxAdapter(threads=1)\n"
        "import jax\n"
        "assert jax.default_backend() == 'cpu', jax.default_backend()\n"
        "r = a.runtime()\n"
        "assert m.SINGLE_THREAD_FLAG in r['xla_flags'] and r['intra_op_pool_threads'] == 1, r\n"
        "assert a.threads_in_effect()['intra_op_threads'] == 1\n"
        "assert 'XLA_FLAGS' not in os.environ, 'the flag leaked into the environment'\n"
        "assert all(os.sched_getaffinity(int(t)) == mask for t in os.listdir('/proc/self/task'))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
