"""The original Theano 1.0.5, driven in its own toolchain environment (numpy 1.23.5) through jobs.

This pytest process never imports theano: every check runs a job (`train`, or a whole study) in the
`theano` environment's worker through the local executor, as a study does, and compares what comes
back with NumPy. The environment is built when it is missing (CI starts from nothing), never skipped.
The parity suite (test_parity.py with DLCOMPAT_PARITY_FRAMEWORKS=pytorch,theano) covers logits,
activations, gradients and save/load; this file covers training and the study around it.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.data.registry import load_dataset, save_npz
from dlcompat.envs.registry import get_env, sync_env
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.config import parse_config
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest
from dlcompat.study.runner import run_study
from dlcompat.zoo.registry import build_spec
from dlcompat.zoo.spec import init_weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def theano_env(tmp_path_factory):
    """The `theano` toolchain environment, built from envs/theano.txt if this machine lacks it."""
    env = get_env("theano")
    if not env.exists():
        sync_env("theano", tmp_path_factory.mktemp("env-sync") / "pip.log")
    assert env.exists()
    return env


@pytest.fixture(scope="module")
def jobs(theano_env, tmp_path_factory):
    """(store, run): run(kind, env, params, inputs) runs one job in that environment's worker, checks it is ok."""
    store = ArtifactStore(tmp_path_factory.mktemp("theano-jobs"))
    with LocalExecutor(slots=2, log_dir=store.root / "logs") as executor:  # a worker per environment, kept

        def run(kind: str, env: str, params: dict, inputs: dict):
            request = JobRequest(kind=kind, env=env, threads=1, timeout_s=900, artifacts_root=str(store.root),
                                 inputs=inputs, params=params)
            outcome = executor.submit(request, lambda _event: None).result()
            assert outcome.status == "ok", f"{kind} in {env}: {outcome.error}\n{outcome.detail}"
            return outcome

        yield store, run


def _dataset_input(store: ArtifactStore, data) -> dict:
    with store.writing(".npz") as tmp:
        save_npz(data, tmp)
        path = store.put_file(tmp, ".npz")
    return {"data": path, "input_shape": list(data.input_shape), "num_classes": data.num_classes}


def _train_both(jobs, data, model: str, train: dict) -> dict[str, dict]:
    """Train `model` once in PyTorch (main environment) and once in Theano (its own): outputs and weights."""
    store, run = jobs
    inputs = {"data": _dataset_input(store, data)}
    out = {}
    for framework, env in (("pytorch", "main"), ("theano", "theano")):
        cell = {"dataset": data.name, "model": model, "framework": framework, "seed": 0, "target": framework,
                "variant": ""}
        outcome = run("train", env, {"cell": cell, "train": train}, inputs)
        with np.load(store.path(outcome.outputs["weights"]), allow_pickle=False) as npz:
            weights = {k: npz[k] for k in npz.files}
        out[framework] = {"outputs": outcome.outputs, "weights": weights, "environment": outcome.environment}
    return out


def test_theano_runs_in_its_own_environment_with_numpy_1_23(jobs):
    """The job's environment record names Theano 1.0.5 and numpy 1.23.5: not the driver's interpreter."""
    data = load_dataset("digits", limit_train=64, limit_test=10)
    store, run = jobs
    cell = {"dataset": "digits", "model": "lenet1", "framework": "theano", "seed": 0, "target": "theano",
            "variant": ""}
    outcome = run("train", "theano", {"cell": cell, "train": {"epochs": 1, "batch_size": 32}},
                  {"data": _dataset_input(store, data)})
    packages = outcome.environment["packages"]
    assert packages["theano"] == "1.0.5" and packages["numpy"] == "1.23.5"
    assert outcome.outputs["framework_version"] == "1.0.5" and outcome.outputs["format"] == "theano"
    assert outcome.outputs["artifact"].endswith(".npz")


def test_one_epoch_of_sgd_gives_pytorchs_weights_on_real_mnist(jobs, shared_data_dir):
    """Same canonical init, same 1,000 real MNIST images in the same batch order, SGD with momentum and
    coupled weight decay: after 32 steps every LeNet-5 weight of Theano's is PyTorch's to within 1e-4 of
    how far training moved it (measured here: 1.7e-6). Without first-maximum routing in max pooling's
    gradient (Theano's own gives every tied element the gradient) this is 0.68."""
    data = load_dataset("mnist", shared_data_dir, limit_train=1000, limit_test=200, val_fraction=0.01,
                        download=False)
    train = {"epochs": 1, "batch_size": 32, "optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4}
    runs = _train_both(jobs, data, "lenet5", train)
    torch_w, theano_w = runs["pytorch"]["weights"], runs["theano"]["weights"]
    init = init_weights(build_spec("lenet5", data.input_shape, data.num_classes), 0)
    assert list(theano_w) == list(torch_w) == list(init)
    for name in init:
        moved = float(np.abs(torch_w[name].astype(np.float64) - init[name]).max())
        apart = float(np.abs(theano_w[name].astype(np.float64) - torch_w[name]).max())
        assert moved > 0, f"{name} did not change in training"
        assert apart <= 1e-4 * moved, f"{name}: theano vs pytorch {apart:.2e}, training moved it {moved:.2e}"
    torch_h, theano_h = (runs[fw]["outputs"]["history"] for fw in ("pytorch", "theano"))
    assert theano_h["train_loss"][0] == pytest.approx(torch_h["train_loss"][0], rel=1e-5)
    assert theano_h["val_accuracy"] == torch_h["val_accuracy"]


def test_adam_step_and_batch_norm_running_statistics_follow_pytorch(jobs, shared_data_dir):
    """ResNet-20, one Adam step on 16 real CIFAR-10 images: batch statistics in the forward pass, the
    running averages with PyTorch's momentum and the *unbiased* batch variance, Adam's bias-corrected
    first step. One step, because Adam turns float32 noise in near-zero gradients into whole steps
    (g / (|g| + eps)): over many steps its trajectories part in any two implementations."""
    data = load_dataset("cifar10", shared_data_dir, limit_train=16, limit_test=10, val_fraction=0.002,
                        download=False)
    lr = 0.001
    runs = _train_both(jobs, data, "resnet20", {"epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": lr,
                                                "weight_decay": 1e-4})
    torch_w, theano_w = runs["pytorch"]["weights"], runs["theano"]["weights"]
    init = init_weights(build_spec("resnet20", data.input_shape, data.num_classes), 0)
    stats = [n for n in init if n.endswith((".mean", ".var"))]
    for name in stats:  # one step from the canonical init: they moved by 0.1 x the batch statistics
        assert not np.array_equal(torch_w[name], init[name]), name
        np.testing.assert_allclose(theano_w[name], torch_w[name], rtol=1e-4, atol=1e-5, err_msg=name)
    trained = [n for n in init if n not in stats]
    apart = np.concatenate([np.abs(theano_w[n] - torch_w[n]).ravel() for n in trained])
    moved = np.concatenate([np.abs(torch_w[n] - init[n]).ravel() for n in trained])
    assert np.median(moved) > 0.5 * lr  # Adam's first step: about lr for every weight with a gradient
    assert np.mean(apart <= 0.01 * lr) >= 0.999, f"{np.mean(apart > 0.01 * lr):.2%} of weights differ by > 1% of lr"


STUDY = """
name = "theano-small"
datasets = ["digits"]
models = ["lenet1"]
frameworks = ["theano"]
runtimes = ["onnxruntime"]
check_reproducibility = true

[data]
limit_train = 300
limit_test = 100

[train]
# 2 epochs leave LeNet-1 at chance on 300 digits in every framework (PyTorch: 0.13); 5 give PyTorch 0.72
epochs = 5

[latency]
warmup = 2
min_repeats = 5
min_time_s = 0.0
"""


def test_a_theano_study_measures_its_cell_and_records_the_missing_converter(theano_env, tmp_path):
    summary = run_study(parse_config(STUDY), tmp_path, executor="local", jobs=1)
    assert summary.failed == 0 and summary.skipped == 0, summary.findings
    rows = ResultStore(database_url(tmp_path)).rows(summary.run_id)
    native = {r["metric"]: r for r in rows if r["framework"] == "theano" and r["target"] == "theano"}
    for metric in ("train_time", "train_time_per_epoch", "val_accuracy", "accuracy", "latency_p50", "model_size"):
        assert native[metric]["status"] == "ok" and native[metric]["value"] is not None, metric
    assert native["accuracy"]["value"] > 0.5  # far above the 0.1 of chance
    assert native["train_time"]["value"] > 0
    assert native["bit_reproducible"]["value"] == 1.0  # compiled C code on one thread: identical runs
    # no converter leaves Theano: its weights move into PyTorch, whose ONNX export ONNX Runtime runs
    onnx = {r["metric"]: r for r in rows if r["target"] == "onnxruntime"}
    assert onnx["accuracy"]["variant"] == "weights → pytorch → torch.onnx (dynamo)"
    assert onnx["accuracy"]["value"] == native["accuracy"]["value"]  # the same weights, the same predictions
    (moved,) = [r for r in rows if r["kind"] == "migrate" and r["metric"] == "conversion_time"]
    assert moved["target"] == "pytorch" and moved["method"]["from"] == "theano"
    assert summary.unavailable == 0
