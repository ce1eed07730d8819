"""dlcompat's FGSM and PGD (ART, through `dlcompat.attacks`) against Foolbox 3, an independent implementation.

Same PyTorch LeNet-5, same 300 real MNIST test images, same budgets: the adversarial examples must be
the same up to float error and the success rates within half a percentage point. Foolbox runs on the
same batches as ART (128 images): a convolution's rounding depends on the batch it runs in, and an
iterative attack takes the sign of gradients that can be ±1e-9, so a different batching may send one
image down another path while both are correct.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.attacks.art import AdapterClassifier, art_classifier
from dlcompat.attacks.catalog import AttackSettings, attack_entry
from dlcompat.attacks.generate import generate_adversarial
from dlcompat.metrics.robustness import attack_figures

IMAGES = 300
EPSILONS = (0.05, 0.1, 0.2, 0.3)
SETTINGS = AttackSettings(epsilons=EPSILONS, images=IMAGES, batch_size=128, steps=10, random_init=False)


def _foolbox(lenet5, attack, x, y):
    fb = pytest.importorskip("foolbox")
    torch = pytest.importorskip("torch")

    class NHWC(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner(z.permute(0, 3, 1, 2))

    model = fb.PyTorchModel(NHWC(lenet5.model).eval(), bounds=(0.0, 1.0))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    chunks = [attack(model, xt[i : i + SETTINGS.batch_size], yt[i : i + SETTINGS.batch_size],
                     epsilons=list(EPSILONS))[1] for i in range(0, len(x), SETTINGS.batch_size)]
    return [torch.cat([chunk[k] for chunk in chunks]).numpy() for k in range(len(EPSILONS))]


def _independent(lenet5, name, x, y):
    fb = pytest.importorskip("foolbox")
    if name == "fgsm":
        return _foolbox(lenet5, fb.attacks.FGSM(), x, y)
    return _foolbox(lenet5, fb.attacks.LinfPGD(rel_stepsize=SETTINGS.eps_step_fraction, abs_stepsize=None,
                                                steps=SETTINGS.steps, random_start=False), x, y)


@pytest.mark.parametrize("native", [True, False], ids=["art-pytorch-classifier", "adapter-classifier"])
@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_fgsm_and_pgd_match_foolbox(lenet5, name, native):
    x, y = lenet5.x[:IMAGES], lenet5.y[:IMAGES]
    classifier, facts = art_classifier(lenet5.adapter, lenet5.model, lenet5.spec, x[:16], native=native)
    assert isinstance(classifier, AdapterClassifier) != native, facts
    ours = generate_adversarial(classifier, attack_entry(name), x, y, SETTINGS, seed=0)
    theirs = _independent(lenet5, name, x, y)
    clean = lenet5.predict(x)
    assert (clean == y).mean() > 0.85
    for batch, other, epsilon in zip(ours, theirs, EPSILONS, strict=True):
        assert batch.epsilon == epsilon
        np.testing.assert_allclose(batch.images, other, rtol=0, atol=1e-6, err_msg=batch.variant)
        a = attack_figures(x, batch.images, y, clean, lenet5.predict(batch.images))
        b = attack_figures(x, other, y, clean, lenet5.predict(other))
        assert abs(a.success_rate - b.success_rate) <= 0.005, (batch.variant, a.success_rate, b.success_rate)
        assert a.linf_max <= epsilon + 1e-6
    # the attack works: more budget, more success
    rates = [attack_figures(x, b.images, y, clean, lenet5.predict(b.images)).success_rate for b in ours]
    assert rates == sorted(rates) and rates[-1] > 0.8
