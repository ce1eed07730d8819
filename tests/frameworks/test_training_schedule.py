"""Learning-rate schedules and augmentation are the same in every framework: the same rate each epoch, the same
augmented batches, hence the same trained weights as PyTorch's.

Each framework reports the rate its own optimizer held in each epoch (`TrainHistory.learning_rate`); that
must be the float32 of `dlcompat.frameworks.lr_schedule` (PyTorch's from torch's own schedulers). Then,
from the same canonical initialisation, two epochs of LeNet-1 on real CIFAR-10 images with a step
schedule and crop-flip augmentation must end in PyTorch's weights: a rate left unchanged, or batches
augmented differently, would move them far more than float32 rounding. Theano runs in its own
environment, through a `train` job.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset, save_npz
from dlcompat.envs.registry import get_env, sync_env
from dlcompat.frameworks.base import TrainSettings
from dlcompat.frameworks.lr_schedule import learning_rates
from dlcompat.frameworks.registry import framework_entry, framework_names, make_adapter
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest
from dlcompat.zoo.registry import build_spec

MAIN_ENV = [name for name in framework_names() if framework_entry(name).env == "main"]
CIFAR = (32, 32, 3)

SCHEDULES = [
    TrainSettings(epochs=4, batch_size=32, lr=0.1, lr_schedule="step", lr_milestones=(1, 3), lr_gamma=0.1, seed=2),
    TrainSettings(epochs=4, batch_size=32, optimizer="adam", lr=1e-3, lr_schedule="cosine", seed=2),
    TrainSettings(epochs=2, batch_size=32, lr=0.05, seed=2),
]
#: two epochs of SGD with momentum, the rate cut by 10 after the first, crop-flip batches
PARITY = TrainSettings(epochs=2, batch_size=16, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_schedule="step",
                       lr_milestones=(1,), lr_gamma=0.1, augmentation="crop-flip", seed=5)
#: max |Δw| against PyTorch after PARITY: float32 sums in another order (measured: 6e-8 TensorFlow, 1.3e-7
#: JAX and PyTensor, with weights moved by up to 0.13; Keras' own SGD, whose velocity keeps the old rate, 0.08)
TRAIN_ATOL = 1e-5


@pytest.fixture(scope="module")
def cifar_64(shared_data_dir):
    return load_dataset("cifar10", shared_data_dir, limit_train=64, limit_test=8, val_fraction=0.01, download=False)


@pytest.fixture(scope="module")
def torch_run(cifar_64):
    """PyTorch's weights after PARITY, and after the same run without augmentation (the control)."""
    adapter = make_adapter("pytorch")
    spec = build_spec("lenet1", CIFAR, 10)
    x, y = to_float(cifar_64.train.x), cifar_64.train.y
    out = {}
    for augmentation in ("crop-flip", "none"):
        model = adapter.build(spec, seed=PARITY.seed)  # as the train job builds it
        settings = TrainSettings(**{**PARITY.__dict__, "augmentation": augmentation})
        adapter.train(model, spec, (x, y), (x[:8], y[:8]), settings)
        out[augmentation] = adapter.get_weights(model)
    return out


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert list(a) == list(b)
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


@pytest.mark.parametrize("framework", MAIN_ENV)
@pytest.mark.parametrize("settings", SCHEDULES, ids=lambda s: s.lr_schedule)
def test_every_framework_trains_each_epoch_at_the_scheduled_rate(framework, settings, mnist_small):
    adapter = make_adapter(framework)
    spec = build_spec("lenet1", (28, 28, 1), 10)
    x, y = to_float(mnist_small.train.x[:64]), mnist_small.train.y[:64]
    history = adapter.train(adapter.build(spec, seed=0), spec, (x, y), (x[:8], y[:8]), settings)
    expected = [float(np.float32(lr)) for lr in learning_rates(settings)]
    assert [float(np.float32(lr)) for lr in history.learning_rate] == expected
    assert len(set(expected)) == (1 if settings.lr_schedule == "constant" else settings.epochs - (
        settings.lr_schedule == "step"))


def test_the_control_run_differs_so_parity_means_the_same_batches(torch_run):
    assert _max_diff(torch_run["crop-flip"], torch_run["none"]) > 100 * TRAIN_ATOL


@pytest.mark.parametrize("framework", [f for f in MAIN_ENV if f != "pytorch"])
def test_a_scheduled_augmented_run_ends_in_pytorchs_weights(framework, cifar_64, torch_run):
    adapter = make_adapter(framework)
    spec = build_spec("lenet1", CIFAR, 10)
    x, y = to_float(cifar_64.train.x), cifar_64.train.y
    model = adapter.build(spec, seed=PARITY.seed)  # as the train job builds it
    history = adapter.train(model, spec, (x, y), (x[:8], y[:8]), PARITY)
    assert history.learning_rate == pytest.approx([0.05, 0.005], rel=1e-6)
    assert _max_diff(adapter.get_weights(model), torch_run["crop-flip"]) <= TRAIN_ATOL


def test_theano_follows_the_schedule_and_the_augmented_batches(cifar_64, torch_run, tmp_path):
    """The same run as a `train` job in Theano's own environment (numpy 1.23)."""
    if not get_env("theano").exists():
        sync_env("theano", tmp_path / "pip.log")
    store = ArtifactStore(tmp_path / "store")
    with store.writing(".npz") as tmp:
        save_npz(cifar_64, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(CIFAR), "num_classes": 10}
    train = {k: v for k, v in PARITY.__dict__.items() if k != "seed"}
    cell = {"dataset": "cifar10", "model": "lenet1", "framework": "theano", "seed": PARITY.seed, "target": "theano",
            "variant": ""}
    request = JobRequest(kind="train", env="theano", threads=1, timeout_s=900, artifacts_root=str(store.root),
                         params={"cell": cell, "train": {**train, "lr_milestones": list(PARITY.lr_milestones)}},
                         inputs={"data": data})
    with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:
        outcome = executor.submit(request, lambda _event: None).result()
    assert outcome.status == "ok", f"{outcome.error}\n{outcome.detail}"
    assert outcome.outputs["history"]["learning_rate"] == pytest.approx([0.05, 0.005], rel=1e-6)
    method = next(m.method for m in outcome.measurements if m.metric == "train_time")
    assert method["lr_schedule"].startswith("step") and method["augmentation"] == "crop-flip"
    with np.load(store.path(outcome.outputs["weights"]), allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    assert _max_diff(weights, torch_run["crop-flip"]) <= TRAIN_ATOL
