"""The robustness figures as cases (worked by hand), the adversarial set file, and class gradients."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.frameworks.base import FrameworkAdapter
from dlcompat.frameworks.registry import adapter_class, framework_entry, framework_names, make_adapter
from dlcompat.metrics.robustness import attack_figures, transfer_figures

LABELS = np.array([0, 1, 2, 3, 4])


def test_attack_figures_count_success_only_on_images_classified_correctly():
    x = np.zeros((5, 2, 2, 1), np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0, 0] = 0.3  # success: L2 0.3, L∞ 0.3
    x_adv[1] += 0.1  # success: L2 0.2 (4 pixels of 0.1), L∞ 0.1
    x_adv[2, 1, 1, 0] = 0.5  # failed: still classified right
    clean = np.array([0, 1, 2, 3, 9])  # the last image is wrong before any attack
    adv = np.array([7, 7, 2, 3, 9])
    f = attack_figures(x, x_adv, LABELS, clean, adv)
    assert (f.images, f.clean_correct, f.successes) == (5, 4, 2)
    assert f.clean_accuracy == 0.8 and f.success_rate == 0.5 and f.robust_accuracy == 0.4
    assert f.l2_mean == pytest.approx(0.25) and f.l2_max == pytest.approx(0.3)
    assert f.linf_mean == pytest.approx(0.2) and f.linf_max == pytest.approx(0.3)


def test_attack_figures_without_a_success_have_no_norms():
    x = np.zeros((2, 1, 1, 1), np.float32)
    f = attack_figures(x, x, LABELS[:2], LABELS[:2], LABELS[:2])
    assert f.success_rate == 0.0 and f.l2_mean is None and f.linf_max is None


def test_transfer_figures_compare_on_images_both_models_get_right():
    source_clean = np.array([0, 1, 2, 3, 0])  # wrong on the last image
    source_adv = np.array([5, 5, 5, 3, 0])  # fools images 0, 1, 2
    target_clean = np.array([0, 1, 9, 3, 4])  # wrong on image 2
    target_adv = np.array([5, 1, 9, 6, 6])  # fooled on 0 (same label as the source), 3 and 4
    f = transfer_figures(LABELS, source_clean, source_adv, target_clean, target_adv)
    assert f.both_correct == 3  # images 0, 1, 3
    assert f.source_success_rate == pytest.approx(2 / 3) and f.target_success_rate == pytest.approx(2 / 3)
    assert f.transfer_rate == 0.5  # of the source's successes on 0 and 1, only 0 fools the target
    assert f.target_robust_accuracy == 0.2 and f.target_clean_accuracy == 0.8
    assert f.adversarial_agreement == 0.2  # only image 0 gets the same adversarial label


def test_an_adversarial_set_round_trips_through_numpy_alone(tmp_path):
    rng = np.random.default_rng(0)
    adversarial = AdversarialSet(
        images=rng.random((3, 4, 4, 1), dtype=np.float32), labels=np.array([1, 2, 3]),
        source_predictions=np.array([4, 2, 0]), clean_predictions=np.array([1, 2, 3]),
        clean_images=rng.integers(0, 256, (3, 4, 4, 1), dtype=np.uint8), indices=np.arange(3),
        targets=np.full(3, -1), attack="fgsm", variant="fgsm eps=0.1", metadata={"epsilon": 0.1, "seed": 0})
    path = tmp_path / "set.npz"
    adversarial.save(path)
    with np.load(path, allow_pickle=False) as raw:  # what a user outside dlcompat does
        assert raw["images"].dtype == np.float32 and raw["images"].shape == (3, 4, 4, 1)
        assert raw["labels"].dtype == np.int64 and str(raw["variant"]) == "fgsm eps=0.1"
    back = AdversarialSet.load(path)
    for name in ("images", "labels", "source_predictions", "clean_predictions", "clean_images", "indices", "targets"):
        np.testing.assert_array_equal(getattr(back, name), getattr(adversarial, name))
    assert back.metadata == {"epsilon": 0.1, "seed": 0}
    np.testing.assert_allclose(back.clean_float, adversarial.clean_images / 255.0, rtol=1e-6)


def test_a_file_that_is_no_adversarial_set_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", images=np.zeros(1))
    with pytest.raises(ValueError, match="not an adversarial set"):
        AdversarialSet.load(tmp_path / "other.npz")


MAIN_ENV = [name for name in framework_names() if framework_entry(name).env == "main"]


@pytest.mark.parametrize("framework", MAIN_ENV)
def test_class_gradients_agree_with_the_adapters_own_loss_gradient(lenet5, framework):
    """d(mean CE)/dx = (Σ_j p_j ∇z_j − ∇z_y) / N: an adapter's class and loss gradients must tell one story.

    Every adapter has `class_gradient` (C&W-L2, DeepFool and JSMA need it); the theano adapter's is
    checked against PyTorch's in its own environment by tests/frameworks/test_parity.py.
    """
    assert adapter_class(framework).class_gradient is not FrameworkAdapter.class_gradient, framework
    try:
        adapter = make_adapter(framework, threads=1)
        model = adapter.build(lenet5.spec, seed=0)
        adapter.set_weights(model, lenet5.adapter.get_weights(lenet5.model))
    except ImportError as exc:
        pytest.skip(f"{framework} adapter not importable here: {exc}")
    x, y = lenet5.x[:6], lenet5.y[:6]
    logits = adapter.predict(model, x).astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    per_class = np.stack([adapter.class_gradient(model, x, np.full(len(x), c)) for c in range(10)], axis=1)
    expected = (np.einsum("nc,nc...->n...", p, per_class) - per_class[np.arange(len(x)), y]) / len(x)
    got = adapter.loss_gradient(model, x, y)
    assert got.shape == x.shape and per_class.shape == (len(x), 10, *x.shape[1:])
    # float32 round-off: the mean over classes cancels terms as large as the largest class gradient, so an
    # element's error scales with that size (/ N), not with its own; 1e-5 of it is about 80 float32 epsilons
    # (the old bound, 1e-6 of the result's largest element, failed on 13 of 4,704 elements on some CPUs)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5 * np.abs(per_class).max() / len(x))
