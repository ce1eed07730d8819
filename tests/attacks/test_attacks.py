"""Every attack of the catalog on LeNet-5 through every kind of ART estimator dlcompat builds.

- `pytorch`: ART's own PyTorchClassifier over the adapter's module (the cross-check, `native=True`);
- `pytorch-adapter`: dlcompat's AdapterClassifier, every gradient the PyTorch adapter's (the study's path
  for every framework);
- `tensorflow`: ART's TensorFlowV2Classifier over the Keras adapter's model, holding the PyTorch
  model's weights (canonical weight transfer), so the two frameworks attack the same function;
- `tensorflow-adapter`: the AdapterClassifier over that Keras model (the study's path for Keras);
- `pytensor`: the AdapterClassifier over the PyTensor adapter with those weights too: every gradient,
  the class gradients of C&W-L2, DeepFool and JSMA included, compiled by PyTensor.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.attacks.art import AdapterClassifier, art_classifier, require_class_gradient
from dlcompat.attacks.catalog import AttackSettings, attack_entry, attack_names
from dlcompat.attacks.generate import generate_adversarial, random_targets
from dlcompat.frameworks.base import FrameworkAdapter, Unavailable
from dlcompat.frameworks.pytorch import PyTorchAdapter
from dlcompat.metrics.robustness import attack_figures

IMAGES = 16
SETTINGS = AttackSettings(epsilons=(0.1, 0.3), images=IMAGES, steps=10, cw_steps=5, cw_binary_search_steps=2,
                          deepfool_steps=20, jsma_gamma=0.1)
#: the least success each attack must reach on the 16 images at its largest budget (measured, the same on
#: PyTorch and Keras: FGSM 0.94, BIM/PGD 1.0, C&W 0.62 with these few steps, DeepFool 1.0, JSMA 0.88)
FLOOR = {"fgsm": 0.6, "bim": 0.9, "pgd": 0.9, "cw-l2": 0.4, "deepfool": 0.9, "jsma": 0.6}
ESTIMATORS = ("pytorch", "pytorch-adapter", "tensorflow", "tensorflow-adapter", "pytensor")


@pytest.fixture(scope="module")
def keras_lenet5(lenet5):
    try:
        from dlcompat.frameworks.registry import make_adapter

        adapter = make_adapter("tensorflow", threads=1)
        model = adapter.build(lenet5.spec, seed=0)
        adapter.set_weights(model, lenet5.adapter.get_weights(lenet5.model))
    except Exception as exc:  # the Keras adapter is not there (yet) or TensorFlow is not installed
        pytest.skip(f"no Keras LeNet-5: {type(exc).__name__}: {exc}")
    return adapter, model


@pytest.fixture(scope="module")
def pytensor_lenet5(lenet5):
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter("pytensor", threads=1)
    model = adapter.build(lenet5.spec, seed=0)
    adapter.set_weights(model, lenet5.adapter.get_weights(lenet5.model))
    return adapter, model


@pytest.fixture(scope="module")
def classifiers(lenet5, request):
    made = {}

    def get(kind):
        if kind not in made:
            x = lenet5.x[:IMAGES]
            if kind in ("tensorflow", "tensorflow-adapter", "pytensor"):
                adapter, model = request.getfixturevalue("pytensor_lenet5" if kind == "pytensor" else "keras_lenet5")
                made[kind] = (adapter, model, art_classifier(adapter, model, lenet5.spec, x,
                                                             native=kind == "tensorflow")[0])
            else:
                made[kind] = (lenet5.adapter, lenet5.model, art_classifier(
                    lenet5.adapter, lenet5.model, lenet5.spec, x, native=kind == "pytorch")[0])
        return made[kind]

    return get


@pytest.fixture(scope="module")
def results(lenet5, classifiers):
    done = {}

    def get(kind, name):
        if (kind, name) not in done:
            adapter, model, classifier = classifiers(kind)
            x, y = lenet5.x[:IMAGES], lenet5.y[:IMAGES]
            batches = generate_adversarial(classifier, attack_entry(name), x, y, SETTINGS, seed=0)
            clean = adapter.predict(model, x).argmax(1)
            figures = [attack_figures(x, b.images, y, clean, adapter.predict(model, b.images).argmax(1))
                       for b in batches]
            done[(kind, name)] = (batches, figures)
        return done[(kind, name)]

    return get


def test_the_catalog_has_the_six_attacks_of_the_study():
    assert attack_names() == ["fgsm", "bim", "pgd", "cw-l2", "deepfool", "jsma"]
    assert [attack_entry(n).gradient for n in attack_names()] == ["loss"] * 3 + ["class"] * 3


@pytest.mark.parametrize("name", attack_names())
@pytest.mark.parametrize("kind", ESTIMATORS)
def test_each_attack_runs_on_lenet5(lenet5, results, kind, name):
    entry = attack_entry(name)
    batches, figures = results(kind, name)
    assert [b.epsilon for b in batches] == ([0.1, 0.3] if entry.sweeps_epsilon else [None])
    x = lenet5.x[:IMAGES]
    for batch, figure in zip(batches, figures, strict=True):
        assert batch.images.shape == x.shape and batch.images.dtype == np.float32
        assert batch.images.min() >= 0.0 and batch.images.max() <= 1.0
        if batch.epsilon is not None:
            assert np.abs(batch.images - x).max() <= batch.epsilon + 1e-6
        assert batch.seconds > 0 and figure.images == IMAGES
    assert figures[-1].success_rate >= FLOOR[name], (kind, name, figures[-1])
    if entry.targeted:  # JSMA aims at the seeded targets, never the true class
        assert (batches[0].targets != lenet5.y[:IMAGES]).all()


@pytest.mark.parametrize("name", attack_names())
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_the_adapter_classifier_finds_what_arts_own_classifier_finds(results, classifiers, framework, name):
    """The study attacks through the adapter classifier; ART's classifier for the framework is the cross-check."""
    assert type(classifiers(framework)[2]).__name__ == {"pytorch": "PyTorchClassifier",
                                                         "tensorflow": "TensorFlowV2Classifier"}[framework]
    assert isinstance(classifiers(f"{framework}-adapter")[2], AdapterClassifier)
    ours, _ = results(f"{framework}-adapter", name)
    arts, _ = results(framework, name)
    for a, b in zip(ours, arts, strict=True):
        np.testing.assert_allclose(a.images, b.images, rtol=0, atol=1e-5, err_msg=a.variant)


def test_the_study_attacks_through_the_adapter_classifier(lenet5):
    classifier, facts = art_classifier(lenet5.adapter, lenet5.model, lenet5.spec, lenet5.x[:4])
    assert isinstance(classifier, AdapterClassifier)
    assert facts["estimator"] == "dlcompat.attacks.art.AdapterClassifier" and facts["class_gradient"]


@pytest.mark.parametrize("name", ["fgsm", "pgd", "deepfool"])
def test_keras_with_the_same_weights_is_fooled_alike(results, name):
    """The same function in two frameworks: the examples differ only where a gradient's sign is float noise."""
    keras_batches, keras_figures = results("tensorflow", name)
    torch_batches, torch_figures = results("pytorch", name)
    for k, t, kf, tf in zip(keras_batches, torch_batches, keras_figures, torch_figures, strict=True):
        same = np.isclose(k.images, t.images, rtol=0, atol=1e-4).mean()
        assert same > 0.95, (k.variant, same)  # measured on 200 images: 98.7 % (PGD) to 100 % (DeepFool)
        assert abs(kf.success_rate - tf.success_rate) <= 2 / IMAGES, (k.variant, kf, tf)


@pytest.mark.parametrize("name", ["cw-l2", "deepfool", "jsma"])
def test_pytensor_follows_its_own_class_gradients_to_pytorchs_examples(results, classifiers, name):
    """The attacks that follow one logit's gradient, on the same weights: PyTensor's gradients, PyTorch's examples."""
    assert isinstance(classifiers("pytensor")[2], AdapterClassifier)
    pytensor_batches, pytensor_figures = results("pytensor", name)
    torch_batches, torch_figures = results("pytorch-adapter", name)
    for p, t, pf, tf in zip(pytensor_batches, torch_batches, pytensor_figures, torch_figures, strict=True):
        same = np.isclose(p.images, t.images, rtol=0, atol=1e-4).mean()
        assert same > 0.99, (p.variant, same)  # measured: 100 %, at most 3e-7 apart
        assert abs(pf.success_rate - tf.success_rate) <= 2 / IMAGES, (p.variant, pf, tf)


def test_seeded_runs_repeat_and_another_seed_differs(lenet5, classifiers):
    _adapter, _model, classifier = classifiers("pytorch")
    x, y = lenet5.x[:IMAGES], lenet5.y[:IMAGES]
    settings = AttackSettings(epsilons=(0.2,), images=IMAGES, steps=5, random_init=True)
    runs = [generate_adversarial(classifier, attack_entry("pgd"), x, y, settings, seed=s)[0].images for s in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    assert np.array_equal(random_targets(y, 10, 5), random_targets(y, 10, 5))


def test_class_gradient_attacks_are_unavailable_without_an_adapter_class_gradient(lenet5):
    class WithoutClassGradient(PyTorchAdapter):
        class_gradient = FrameworkAdapter.class_gradient

    adapter = WithoutClassGradient(threads=1)
    classifier, facts = art_classifier(adapter, lenet5.model, lenet5.spec, lenet5.x[:4], native=False)
    assert isinstance(classifier, AdapterClassifier) and facts["class_gradient"] is False
    with pytest.raises(Unavailable, match="no class_gradient"):
        require_class_gradient(classifier, "without-class-gradient", "DeepFool")
    with pytest.raises(Unavailable, match="no class_gradient"):
        classifier.class_gradient(lenet5.x[:2], label=0)
    # the loss-gradient attacks still run on it
    batches = generate_adversarial(classifier, attack_entry("fgsm"), lenet5.x[:4], lenet5.y[:4],
                                   AttackSettings(epsilons=(0.1,)), seed=0)
    assert batches[0].images.shape == lenet5.x[:4].shape


def test_an_environment_without_art_records_the_attack_unavailable_with_the_fix(monkeypatch):
    """An environment without ART (a new toolchain environment) says so, and which pin would fix it."""
    import sys

    from dlcompat.study.jobs import attack

    monkeypatch.setitem(sys.modules, "dlcompat.attacks.art", None)  # what `import` meets where ART is missing
    with pytest.raises(Unavailable, match=r"adversarial-robustness-toolbox==1\.20\.1"):
        attack._art()


def test_the_adapter_classifier_hands_art_writable_arrays(lenet5):
    """ART's C&W writes into the logits it gets; an adapter may return a read-only view (JAX does)."""

    class ReadOnly(PyTorchAdapter):
        def predict(self, model, x, batch_size=256):
            out = super().predict(model, x, batch_size)
            out.flags.writeable = False
            return out

    classifier, _ = art_classifier(ReadOnly(threads=1), lenet5.model, lenet5.spec, lenet5.x[:4], native=False)
    assert classifier.predict(lenet5.x[:4]).flags.writeable
    settings = AttackSettings(cw_steps=2, cw_binary_search_steps=1)
    (batch,) = generate_adversarial(classifier, attack_entry("cw-l2"), lenet5.x[:4], lenet5.y[:4], settings, seed=0)
    assert batch.images.shape == lenet5.x[:4].shape


def test_a_native_classifier_that_disagrees_with_the_adapter_is_replaced_and_the_reason_kept(lenet5):
    class Shifted(PyTorchAdapter):  # its predictions are not what the module computes
        def predict(self, model, x, batch_size=256):
            return super().predict(model, x, batch_size) + 1.0

    classifier, facts = art_classifier(Shifted(threads=1), lenet5.model, lenet5.spec, lenet5.x[:4], native=True)
    assert isinstance(classifier, AdapterClassifier)
    assert "logits differ from the adapter's" in facts["native_estimator_rejected"]
