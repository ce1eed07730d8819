"""The paper section: each framework's accuracy over seeds against its model's published accuracy, judged by the
seed spread, and the paper's questions with this run's answers; only for a run that trained such a model."""

from __future__ import annotations

from typing import Any

from dlcompat.report.document import build_document
from dlcompat.report.rows import normalize_rows
from dlcompat.report.sections.base import RunData
from dlcompat.report.sections.paper import build

from .conftest import row


def trained(framework: str, model: str, accuracies: list[float], *, images: int = 54_000, epochs: int = 20,
            dataset: str = "mnist") -> list[dict[str, Any]]:
    out = []
    for seed, accuracy in enumerate(accuracies):
        native = {"dataset": dataset, "framework": framework, "seed": seed}
        out.append({**row("accuracy", accuracy, "fraction", model=model, target=framework), **native})
        out.append({**row("train_time", 60.0, "s", model=model, kind="train", target=framework,
                          method={"train_images": images, "settings": {"epochs": epochs}}), **native})
    return out


def paper_rows() -> list[dict[str, Any]]:
    return normalize_rows([
        *trained("pytorch", "lenet5", [0.9907, 0.9911, 0.9903]),  # around 99.05 %: within its spread
        *trained("theano", "lenet5", [0.9871, 0.9868, 0.9874]),  # 0.34 pp short, far beyond a 0.03 pp spread
        *trained("jax", "lenet1", [0.985]),  # one seed
        *trained("pytorch", "resnet20", [0.61], images=4_500, epochs=10, dataset="cifar10"),
    ])


def test_each_accuracy_is_judged_against_its_reference_by_the_seed_spread():
    section = build(RunData({}, paper_rows()))
    assert section is not None
    verdicts = {(r["model"].text, r["framework"].text): r["verdict"].text for r in section.tables[0].rows}
    assert verdicts[("lenet5", "PyTorch")] == "within its seed spread of the reference"
    assert verdicts[("lenet5", "Theano")] == "0.34 pp short, beyond its seed spread"
    assert verdicts[("lenet1", "JAX")] == "reaches it (one seed: no spread)"
    assert verdicts[("resnet20", "PyTorch")] == ("not comparable: trained on 4,500 images for 10 epochs (the "
                                                 "reference: 45,000 for 182)")
    assert section.answer.startswith("1 of 3 comparable framework models fall short of the published accuracy: "
                                     "Theano lenet5 (0.34 pp short)")
    questions = section.tables[1]
    assert len(questions.rows) == 4 and questions.rows[0]["section"].text == "Training across frameworks"


def test_it_opens_the_report_of_such_a_run_and_nothing_else_has_it():
    document = build_document({"id": "r1"}, paper_rows())
    assert [s.id for s in document.sections][:2] == ["summary", "paper"]
    digits = [{**r, "dataset": "digits"} for r in paper_rows()]
    assert build(RunData({}, digits)) is None
