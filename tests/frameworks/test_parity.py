"""Same weights, same outputs: every framework, in its own toolchain environment, against every other.

One set of canonical weights (random, with non-trivial batch-norm statistics) is loaded into each
available framework through a `probe` job run by the local executor, so frameworks of other
environments (Theano) are checked in their own interpreter. Logits and every named layer's
activation must agree within 1e-4 (float32) for all four models, on real images; input gradients (of
the loss, and of one logit per image) within 1e-2 relative L2 of PyTorch's.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset
from dlcompat.envs.registry import get_env
from dlcompat.frameworks.registry import framework_entry, framework_names
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest
from dlcompat.zoo.registry import build_spec

from .weights import random_weights

ATOL = 1e-4
MODELS = [("lenet1", "mnist"), ("lenet5", "mnist"), ("resnet20", "cifar10"), ("vgg16", "cifar10")]


def available_frameworks() -> list[str]:
    only = os.environ.get("DLCOMPAT_PARITY_FRAMEWORKS")  # e.g. "pytorch,jax" while developing one adapter
    names = only.split(",") if only else framework_names()
    return [name for name in names if get_env(framework_entry(name).env).exists()]


@pytest.fixture(scope="module")
def probes(tmp_path_factory, shared_data_dir):
    """Run every probe once: {(model, framework): outputs}."""
    store = ArtifactStore(tmp_path_factory.mktemp("parity"))
    frameworks = available_frameworks()
    results: dict[tuple[str, str], dict] = {}
    with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:
        for model, dataset in MODELS:
            data = load_dataset(dataset, shared_data_dir, limit_train=10, limit_test=6, download=False)
            spec = build_spec(model, data.input_shape, data.num_classes)
            with store.writing(".npz") as tmp:
                np.savez(tmp, **random_weights(spec, seed=7))
                weights = store.put_file(tmp, ".npz")
            probe = {"weights": weights, "images": store.put_array(to_float(data.test.x)),
                     "labels": store.put_array(data.test.y)}
            for framework in frameworks:
                request = JobRequest(kind="probe", env=framework_entry(framework).env, threads=1, timeout_s=600,
                                     artifacts_root=str(store.root), inputs={"probe": probe},
                                     params={"framework": framework, "model": model,
                                             "input_shape": list(data.input_shape), "num_classes": data.num_classes})
                outcome = executor.submit(request, lambda _e: None).result()
                assert outcome.status == "ok", f"{framework}/{model}: {outcome.error}\n{outcome.detail}"
                results[(model, framework)] = outcome.outputs
    return store, frameworks, results


@pytest.mark.parametrize("model", [m for m, _ in MODELS])
def test_logits_agree_between_every_pair_of_frameworks(probes, model):
    store, frameworks, results = probes
    logits = {fw: store.get_array(results[(model, fw)]["logits"]) for fw in frameworks}
    for a, b in itertools.combinations(frameworks, 2):
        diff = float(np.abs(logits[a] - logits[b]).max())
        assert diff <= ATOL, f"{model}: {a} vs {b} max |Δlogit| = {diff:.2e}"


@pytest.mark.parametrize("model", [m for m, _ in MODELS])
def test_every_layer_agrees_with_pytorch(probes, model):
    store, frameworks, results = probes
    reference = np.load(store.path(results[(model, "pytorch")]["activations"]))
    for fw in frameworks:
        acts = np.load(store.path(results[(model, fw)]["activations"]))
        assert set(acts.files) == set(reference.files), fw
        for layer in reference.files:
            scale = max(1.0, float(np.abs(reference[layer]).max()))
            diff = float(np.abs(acts[layer] - reference[layer]).max())
            assert diff <= ATOL * scale, f"{model}/{layer}: {fw} vs pytorch max |Δ| = {diff:.2e}"


@pytest.mark.parametrize("model", [m for m, _ in MODELS])
def test_gradients_weights_and_save_load_agree(probes, model):
    store, frameworks, results = probes
    reference = store.get_array(results[(model, "pytorch")]["gradient"]).astype(np.float64)
    class_reference = store.get_array(results[(model, "pytorch")]["class_gradient"]).astype(np.float64)
    for fw in frameworks:
        out = results[(model, fw)]
        grad = store.get_array(out["gradient"]).astype(np.float64)
        # relative L2, not max |Δ|: a ReLU whose float32 pre-activation lies within rounding of zero
        # (seen in resnet20: -8.8e-7 in float64) opens in one framework and stays shut in another, which
        # changes a few input-gradient entries by ~1e-3 while every forward figure agrees to 1e-6
        error = float(np.linalg.norm(grad - reference) / max(np.linalg.norm(reference), 1e-12))
        assert error <= 1e-2, f"{model}: {fw} input gradient differs from PyTorch's by {error:.2e} (relative L2)"
        # the gradient of one logit per image (the one C&W-L2, DeepFool and JSMA follow), measured the same way
        class_grad = store.get_array(out["class_gradient"]).astype(np.float64)
        error = float(np.linalg.norm(class_grad - class_reference) / max(np.linalg.norm(class_reference), 1e-12))
        assert error <= 1e-2, f"{model}: {fw} class gradient differs from PyTorch's by {error:.2e} (relative L2)"
        assert out["weights_round_trip_max_diff"] == 0.0, fw
        assert out["save_load_max_diff"] <= 1e-6, fw
