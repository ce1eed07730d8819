"""The transfer job: every attack of a source in one load of a derived model; a missing attack and a broken target.

The jobs run in this process on real artifacts: a PyTorch LeNet-5 trained on MNIST, attacked by the
real `attack` job (FGSM at two budgets), its sets then transferred by the real `transfer` job to the
same weights in PyTensor (the weight-transfer runtime). The second attack's upstream is one that
ended unavailable, in the form the runner hands a job that tolerates it.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.attacks.catalog import AttackSettings, attack_entry
from dlcompat.data.registry import save_npz
from dlcompat.metrics.robustness import transfer_figures
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.attack_plan import adversarial_role
from dlcompat.study.jobs import attack, transfer
from dlcompat.study.jobs.base import JobContext, JobOutcome, run_job

IMAGES = 24
CELL = {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0}
MISSING = {"upstream": {"status": "unavailable", "label": "attack pytorch/lenet5/mnist/seed0 with DeepFool",
                        "error": "DeepFool needs class gradients (injected for this test)\nsecond line"}}
ROUTE = "weight transfer"


@pytest.fixture(scope="module")
def made(lenet5, mnist_small, tmp_path_factory):
    """(store, data input, weights input, the FGSM attack job's outputs)."""
    store = ArtifactStore(tmp_path_factory.mktemp("transfer-job"))
    with store.writing(".npz") as tmp:
        save_npz(mnist_small, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(mnist_small.input_shape),
                "num_classes": mnist_small.num_classes}
    with store.writing(".pt") as tmp:
        lenet5.adapter.save(lenet5.model, tmp)
        native = store.put_file(tmp, ".pt")
    with store.writing(".npz") as tmp:
        np.savez(tmp, **lenet5.adapter.get_weights(lenet5.model))
        weights = store.put_file(tmp, ".npz")
    settings = attack_entry("fgsm").key_settings(AttackSettings(epsilons=(0.1, 0.2), images=IMAGES))
    ctx = JobContext("attack", {"cell": {**CELL, "target": "pytorch", "variant": "fgsm"}, "attack": "fgsm",
                                "settings": settings}, {"data": data, "model": {"artifact": native}}, store)
    outcome = run_job(attack.run, ctx)
    assert outcome.status == "ok", outcome.error
    return store, data, {"weights": weights}, outcome.outputs


def _transfer(store, data, model, adversarial: dict) -> tuple[JobOutcome, list[dict]]:
    params = {"cell": {**CELL, "target": "pytensor", "variant": f"fgsm, deepfool · {ROUTE}"}, "route": ROUTE,
              "attacks": ["fgsm", "deepfool"], "runtime": "weights", "adapter": "pytensor", "artifact_key": "weights"}
    events: list[dict] = []
    ctx = JobContext("transfer", params, {"data": data, "model": model, **adversarial}, store, progress=events.append)
    return run_job(transfer.run, ctx), events


def test_every_set_of_every_attack_transfers_in_one_job_and_a_missing_attack_is_a_row(made):
    store, data, model, fgsm = made
    outcome, events = _transfer(store, data, model,
                                {adversarial_role("fgsm"): fgsm, adversarial_role("deepfool"): MISSING})
    assert outcome.status == "ok", outcome.error
    rows = {(m.variant, m.metric): m for m in outcome.measurements}
    for variant in ("fgsm eps=0.1", "fgsm eps=0.2"):
        for metric in transfer.METRICS:
            row = rows[(f"{variant} · {ROUTE}", metric)]
            assert row.status == "ok" and 0.0 <= row.value <= 1.0 and row.target == "pytensor"
    assert [e["set"] for e in events] == [1, 2]
    # the figures are those of the stored sets run through PyTensor with the same weights
    for entry in fgsm["sets"]:
        adversarial = AdversarialSet.load(store.path(entry["artifact"]))
        out = outcome.outputs["transfers"][[s["artifact"] for s in fgsm["sets"]].index(entry["artifact"])]
        assert out["variant"] == f"{entry['variant']} · {ROUTE}"
        source = rows[(out["variant"], "transfer_source_success_rate")].value
        labels, clean, adv = adversarial.labels, adversarial.clean_predictions, adversarial.source_predictions
        assert source == pytest.approx(transfer_figures(labels, clean, adv, clean, adv).source_success_rate)
        assert rows[(out["variant"], "adversarial_agreement")].value >= 0.9  # same weights, another framework
    # the attack that made no sets: one row with its status and first error line, beside the target's others
    missing = rows[(f"deepfool · {ROUTE}", "transfer")]
    assert missing.status == "unavailable" and missing.value is None
    assert missing.error == ("no adversarial sets to transfer: attack pytorch/lenet5/mnist/seed0 with DeepFool "
                             "ended unavailable: DeepFool needs class gradients (injected for this test)")
    assert len(outcome.measurements) == 2 * len(transfer.METRICS) + 1


def test_a_target_that_cannot_load_is_one_failure_and_the_missing_attack_still_says_so(made):
    store, data, _model, fgsm = made
    broken = store.put_bytes(b"not a weights file", ".npz")
    outcome, _ = _transfer(store, data, {"weights": broken},
                        {adversarial_role("fgsm"): fgsm, adversarial_role("deepfool"): MISSING})
    assert outcome.status == "failed" and "not a canonical weights file" in outcome.error
    problems = [m for m in outcome.measurements if m.metric == "transfer"]
    assert {(m.variant, m.status) for m in problems} == {(f"fgsm, deepfool · {ROUTE}", "failed"),
                                                         (f"deepfool · {ROUTE}", "unavailable")}
    assert len(outcome.measurements) == 2


def test_no_set_at_all_loads_no_target(made):
    store, data, _model, _fgsm = made
    never = store.put_bytes(b"never read", ".npz")  # loading it would fail the job
    outcome, _ = _transfer(store, data, {"weights": never},
                        {adversarial_role("fgsm"): MISSING, adversarial_role("deepfool"): MISSING})
    assert outcome.status == "ok" and outcome.outputs["transfers"] == []
    assert {(m.variant, m.status) for m in outcome.measurements} == {(f"fgsm · {ROUTE}", "unavailable"),
                                                                    (f"deepfool · {ROUTE}", "unavailable")}
