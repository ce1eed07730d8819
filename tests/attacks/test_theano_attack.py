"""Attacks on a Theano-trained model, in the `theano` environment (Theano 1.0.5, numpy 1.23.5, ART 1.20.1).

This pytest process never imports theano: a `train` job and then `attack` jobs run in the theano
environment's worker through the local executor, as in a study, and the adversarial sets come back
as `.npz` files NumPy reads. FGSM follows the adapter's loss gradient; DeepFool its class gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.attacks.catalog import AttackSettings, attack_entry
from dlcompat.data.registry import load_dataset, save_npz
from dlcompat.envs.registry import get_env, sync_env
from dlcompat.metrics.robustness import attack_figures
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest

pytestmark = pytest.mark.slow

IMAGES = 12
CELL = {"dataset": "digits", "model": "lenet1", "framework": "theano", "seed": 0, "target": "theano"}


@pytest.fixture(scope="module")
def theano_lenet1(tmp_path_factory):
    """(store, run, data input, trained model outputs): a LeNet-1 trained 8 epochs on 800 digits in Theano."""
    env = get_env("theano")
    if not env.exists():  # CI starts from nothing: build it, never skip
        sync_env("theano", tmp_path_factory.mktemp("env-sync") / "pip.log")
    store = ArtifactStore(tmp_path_factory.mktemp("theano-attack"))
    data = load_dataset("digits", limit_train=800, limit_test=IMAGES)
    with store.writing(".npz") as tmp:
        save_npz(data, tmp)
        data_input = {"data": store.put_file(tmp, ".npz"), "input_shape": list(data.input_shape),
                      "num_classes": data.num_classes}
    with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:

        def run(kind: str, params: dict, inputs: dict):
            request = JobRequest(kind=kind, env="theano", threads=1, timeout_s=900,
                                 artifacts_root=str(store.root), inputs=inputs, params=params)
            return executor.submit(request, lambda _event: None).result()

        trained = run("train", {"cell": {**CELL, "variant": ""}, "train": {"epochs": 8, "batch_size": 32}},
                      {"data": data_input})
        assert trained.status == "ok", f"{trained.error}\n{trained.detail}"
        yield store, run, data_input, trained.outputs


def _attack(theano_lenet1, name: str, settings: AttackSettings):
    store, run, data_input, model = theano_lenet1
    params = {"cell": {**CELL, "variant": name}, "attack": name, "settings": attack_entry(name).key_settings(settings)}
    outcome = run("attack", params, {"data": data_input, "model": model})
    assert outcome.status == "ok", f"{name} on Theano: {outcome.error}\n{outcome.detail}"
    return store, outcome


def test_fgsm_attacks_a_theano_lenet1_in_its_own_environment(theano_lenet1):
    store, outcome = _attack(theano_lenet1, "fgsm", AttackSettings(epsilons=(0.1, 0.3), images=IMAGES))
    packages = outcome.environment["packages"]
    assert packages["theano"] == "1.0.5" and packages["numpy"] == "1.23.5"
    assert outcome.outputs["estimator"]["estimator"] == "dlcompat.attacks.art.AdapterClassifier"
    assert outcome.outputs["estimator"]["gradients"] == "theano adapter"
    rows = {(m.variant, m.metric): m for m in outcome.measurements}
    assert [s["variant"] for s in outcome.outputs["sets"]] == ["fgsm eps=0.1", "fgsm eps=0.3"]
    for entry in outcome.outputs["sets"]:
        adversarial = AdversarialSet.load(store.path(entry["artifact"]))
        assert len(adversarial) == IMAGES and adversarial.metadata["versions"]["art"] == "1.20.1"
        assert adversarial.metadata["framework"] == "theano"
        # an L∞ attack of budget ε moves no pixel further than ε (float32 rounding aside)
        shift = np.abs(adversarial.images - adversarial.clean_float).max()
        assert shift <= entry["epsilon"] + 1e-6 and shift > 0
        figures = attack_figures(adversarial.clean_float, adversarial.images, adversarial.labels,
                                 adversarial.clean_predictions, adversarial.source_predictions)
        assert rows[(entry["variant"], "attack_success_rate")].value == pytest.approx(figures.success_rate)
        assert figures.clean_correct >= IMAGES // 2  # the model learnt something: there is something to attack
    assert rows[("fgsm eps=0.3", "robust_accuracy")].value <= rows[("fgsm eps=0.1", "robust_accuracy")].value


def test_deepfool_follows_the_theano_adapters_class_gradient(theano_lenet1):
    store, outcome = _attack(theano_lenet1, "deepfool", AttackSettings(images=IMAGES, deepfool_steps=10))
    assert outcome.outputs["estimator"]["class_gradient"] is True
    (entry,) = outcome.outputs["sets"]
    adversarial = AdversarialSet.load(store.path(entry["artifact"]))
    figures = attack_figures(adversarial.clean_float, adversarial.images, adversarial.labels,
                             adversarial.clean_predictions, adversarial.source_predictions)
    success = next(m for m in outcome.measurements if m.metric == "attack_success_rate")
    assert success.status == "ok" and success.value == pytest.approx(figures.success_rate)
    assert figures.success_rate > 0.5  # DeepFool fools nearly every image it is given
    assert 0 < figures.l2_mean < 5  # a minimal perturbation: small next to a whole 28x28 image (L2 up to 28)
