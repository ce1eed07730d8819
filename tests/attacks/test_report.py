"""The robustness section from hand-written rows: curves from ε = 0, a missing attack shown as such, transfer gaps."""

from __future__ import annotations

from dlcompat.report.document import build_document
from dlcompat.report.sections.robustness import epsilon_curves, is_robustness, robustness_section


def row(kind, metric, value, *, framework="pytorch", target="pytorch", variant="", status="ok", error="",
        method=None, unit="fraction"):
    return {"run": "r", "job": f"{kind}-{framework}-{variant}", "kind": kind, "dataset": "mnist", "model": "lenet5",
            "framework": framework, "seed": 0, "target": target, "variant": variant, "metric": metric,
            "value": value, "unit": unit, "status": status, "error": error, "artifact": "", "method": method or {}}


def fgsm(framework, epsilon, robust, clean=0.95):
    method = {"attack": "fgsm", "epsilon": epsilon, "clean_accuracy": clean, "images": 100,
              "estimator": "art.PyTorchClassifier"}
    variant = f"fgsm eps={epsilon:g}"
    return [row("attack", "robust_accuracy", robust, framework=framework, target=framework, variant=variant,
                method=method),
            row("attack", "attack_success_rate", 1 - robust / clean, framework=framework, target=framework,
                variant=variant, method=method)]


ROWS = [
    *fgsm("pytorch", 0.1, 0.6), *fgsm("pytorch", 0.3, 0.1),
    *fgsm("jax", 0.1, 0.5), *fgsm("jax", 0.3, 0.05),
    row("attack", "attack", None, framework="jax", target="jax", variant="deepfool", status="unavailable",
        error="DeepFool needs class gradients, and the jax adapter has no class_gradient"),
    row("transfer", "adversarial_agreement", 0.98, target="onnxruntime",
        variant="fgsm eps=0.1 · torch.onnx (dynamo)",
        method={"attack": "fgsm", "attack_variant": "fgsm eps=0.1", "route": "torch.onnx (dynamo)", "epsilon": 0.1}),
    row("transfer", "transfer_success_rate", 0.37, target="onnxruntime", variant="fgsm eps=0.1 · torch.onnx (dynamo)",
        method={"attack": "fgsm", "attack_variant": "fgsm eps=0.1", "route": "torch.onnx (dynamo)", "epsilon": 0.1}),
    # an attack whose sets did not reach the derived model: a row of the transfer job, no set
    row("transfer", "transfer", None, target="onnxruntime", variant="pgd · torch.onnx (dynamo)", status="failed",
        error="KeyError: 'pgd'", method={"attack": "pgd", "route": "torch.onnx (dynamo)"}),
    row("evaluate", "accuracy", 0.95),
]


def test_curves_start_at_the_clean_accuracy_and_follow_epsilon():
    curves = epsilon_curves([r for r in ROWS if is_robustness(r)])
    assert curves["fgsm"][("mnist", "lenet5", "pytorch")] == {0.0: 0.95, 0.1: 0.6, 0.3: 0.1}
    assert set(curves["fgsm"]) == {("mnist", "lenet5", "pytorch"), ("mnist", "lenet5", "jax")}


def test_the_section_shows_attacks_missing_ones_and_transfer_gaps():
    section = robustness_section(ROWS)
    attacks, summary, transfer = section.tables
    assert [t.id for t in section.tables] == ["attacks", "transfer", "transfer-sets"]
    (pair,) = summary.rows
    assert pair["sets"].sort == 1 and pair["differing"].status == "inconsistent"  # the failed row is no set
    assert pair["adversarial_agreement"].text == "98.00 %"
    unavailable = [r for r in attacks.rows if r["attack"].text == "DeepFool"]
    assert len(unavailable) == 1 and unavailable[0]["attack_success_rate"].status == "unavailable"
    assert "class_gradient" in unavailable[0]["attack_success_rate"].note
    gap, failed = sorted(transfer.rows, key=lambda r: r["setting"].text)  # the failed set is listed, as failed
    assert failed["setting"].text == "pgd" and "failed" in {cell.status for cell in failed.values()}
    assert gap["adversarial_agreement"].status == "inconsistent" and gap["route"].text == "torch.onnx (dynamo)"
    assert gap["setting"].text == "fgsm eps=0.1" and gap["target"].text == "ONNX Runtime"
    assert "between 50.00 % (lenet5 in JAX) and 60.00 % (lenet5 in PyTorch)" in section.answer
    assert "1 of 1 transferred sets are labelled differently" in section.answer
    assert "1 attack(s) could not run" in section.answer


def test_a_run_without_attacks_has_no_robustness_section():
    document = build_document({"id": "r"}, [row("evaluate", "accuracy", 0.95)])
    section = document.section("robustness")  # every report answers the question, here with what to configure
    assert not section.has_data and "[attacks] section" in section.answer
    assert robustness_section([row("evaluate", "accuracy", 0.95)]) is None
