"""The paper's questions, answered beside its figures (Guo et al. 2018), for a run that trained a model the
literature has a published accuracy for.

It opens such a report: each framework's test accuracy over seeds against the published reference of its model
(LeNet-1 and LeNet-5 on MNIST, LeCun et al. 1998; ResNet-20 on CIFAR-10, He et al. 2016), with a verdict against
the seed spread (the 95 % interval of the mean: below, within or above the reference), then each of the paper's
questions with the answer of the section that measures it. A run that trained with fewer images or epochs than the
reference's recipe is compared nonetheless, and its verdict says "not comparable" and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlcompat.metrics.statistics import summarize

from ..formatting import MISSING, display_name, percent
from ..model import Cell, Column, Section, Table
from ..tables import text_cell
from .base import RunData, SectionSpec
from .deployment import SPEC as DEPLOYMENT
from .deployment import build as build_deployment
from .migration import SPEC as MIGRATION
from .migration import build as build_migration
from .migration import framework_names_in_order
from .robustness import SPEC as ROBUSTNESS
from .robustness import build as build_robustness
from .training import SPEC as TRAINING
from .training import build as build_training
from .training import native_accuracy


@dataclass(frozen=True)
class Reference:
    """A published test accuracy and the recipe that reached it (what a run must match to be compared)."""

    accuracy: float
    source: str
    train_images: int  # at least this many training images ...
    epochs: int  # ... for at least this many epochs


#: (dataset, model) -> its published accuracy. LeNet-1: 1.7 % test error, LeNet-5: 0.95 % (LeCun et al.,
#: Gradient-Based Learning Applied to Document Recognition, 1998, fig. 9; 60,000 images, 20 passes: the paper-mnist
#: preset holds 6,000 out for validation); ResNet-20: 8.75 % (He et al., CVPR 2016, table 6; 45k/5k split, 182 epochs)
REFERENCES: dict[tuple[str, str], Reference] = {
    ("mnist", "lenet1"): Reference(0.983, "LeCun et al. 1998", 54_000, 20),
    ("mnist", "lenet5"): Reference(0.9905, "LeCun et al. 1998", 54_000, 20),
    ("cifar10", "resnet20"): Reference(0.9125, "He et al. 2016", 45_000, 182),
}

#: the paper's questions, each with the section whose answer is dlcompat's
QUESTIONS: tuple[tuple[str, SectionSpec, Any], ...] = (
    ("Does the same model, trained the same way, reach the same accuracy, in the same time and memory, in each "
     "framework?", TRAINING, build_training),
    ("How robust is each framework's model, and do its adversarial examples still fool the migrated and deployed "
     "copies?", ROBUSTNESS, build_robustness),
    ("What does moving a trained model to another framework lose (same weights, or through converters)?",
     MIGRATION, build_migration),
    ("What does deploying it to a server, a phone or a browser lose: accuracy, agreement, size, time?",
     DEPLOYMENT, build_deployment),
)


@dataclass(frozen=True)
class Trained:
    """One framework's models of one (dataset, model): accuracy per seed, and the recipe they trained with."""

    accuracy: dict[int | None, float]
    train_images: int
    epochs: int


def trained(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Trained]:
    """(dataset, model, framework) -> its native test accuracy per seed (as the training section reads it) and the
    smallest recipe its seeds used, for the models with a published reference."""
    recipe: dict[tuple[str, str, str], tuple[int, int]] = {}
    for row in rows:
        if row["metric"] == "train_time" and row["kind"] == "train" and row["status"] == "ok":
            method = row["method"] or {}
            seen = (int(method.get("train_images") or 0), int((method.get("settings") or {}).get("epochs") or 0))
            key = (row["dataset"], row["model"], row["framework"])
            recipe[key] = min(recipe.get(key, seen), seen)
    return {key: Trained(values, *recipe.get(key, (0, 0))) for key, values in native_accuracy(rows).items()
            if key[:2] in REFERENCES}


def verdict(reference: Reference, model: Trained) -> tuple[str, str]:
    """What the seeds' accuracy says against the reference: (text, status) against the 95 % interval of the mean."""
    if model.train_images < reference.train_images or model.epochs < reference.epochs:
        return (f"not comparable: trained on {model.train_images:,} images for {model.epochs} epochs (the reference: "
                f"{reference.train_images:,} for {reference.epochs})", "")
    summary = summarize(list(model.accuracy.values()))
    gap = (reference.accuracy - summary.mean) * 100
    if summary.n < 2:
        return ("reaches it (one seed: no spread)" if gap <= 0 else f"{gap:.2f} pp short (one seed: no spread to "
                "judge it by)", "" if gap <= 0 else "inconsistent")
    if summary.ci_high < reference.accuracy:
        return f"{gap:.2f} pp short, beyond its seed spread", "inconsistent"
    if summary.ci_low > reference.accuracy:
        return f"{-gap:.2f} pp above, beyond its seed spread", ""
    return "within its seed spread of the reference", ""


def reference_table(models: Mapping[tuple[str, str, str], Trained]) -> Table:
    table = Table("paper-accuracy", "Accuracy per framework against the published reference", [
        Column("dataset", "dataset"), Column("model", "model"), Column("framework", "framework"),
        Column("seeds", "seeds", numeric=True), Column("accuracy", "accuracy (mean ± sd)", numeric=True),
        Column("ci", "95% CI of the mean"), Column("reference", "published", numeric=True),
        Column("verdict", "against the reference")])
    order = {name: i for i, name in enumerate(framework_names_in_order())}
    for (dataset, model, framework), item in sorted(models.items(), key=lambda kv: (kv[0][:2], order.get(kv[0][2], 9))):
        reference = REFERENCES[(dataset, model)]
        summary = summarize(list(item.accuracy.values()))
        text, status = verdict(reference, item)
        spread = "" if math.isnan(summary.std) else f" ± {percent(summary.std)}"
        table.rows.append({
            "dataset": text_cell(dataset), "model": text_cell(model), "framework": text_cell(display_name(framework)),
            "seeds": Cell(str(summary.n), summary.n),
            "accuracy": Cell(f"{percent(summary.mean)}{spread}", summary.mean),
            "ci": Cell(MISSING if math.isnan(summary.ci_low) else
                       f"{percent(summary.ci_low)} – {percent(summary.ci_high)}", summary.ci_low),
            "reference": Cell(percent(reference.accuracy), reference.accuracy, note=reference.source),
            "verdict": Cell(text, text, status=status)})
    return table


def questions_table(run: RunData) -> Table:
    table = Table("paper-questions", "The paper's questions, and where this run answers them", [
        Column("question", "question"), Column("answer", "this run's answer"), Column("section", "section")])
    for question, spec, build in QUESTIONS:
        section = build(run)
        answer = section.answer if section is not None else MISSING
        table.rows.append({"question": text_cell(question), "answer": text_cell(answer),
                           "section": text_cell(spec.title)})
    return table


def answer(table: Table) -> str:
    verdicts = [row["verdict"] for row in table.rows]
    short = [row for row in table.rows if row["verdict"].status == "inconsistent"]
    comparable = [v for v in verdicts if not str(v.text).startswith("not comparable")]
    if not comparable:
        return ("This run trained with less than the published recipes (fewer images or epochs), so its accuracies "
                "are not comparable with the published ones; the table says by how much.")
    if not short:
        return (f"Every framework reaches its model's published accuracy or lies within its seed spread of it "
                f"({len(comparable)} of {len(verdicts)} comparable).")
    named = ", ".join(f"{r['framework'].text} {r['model'].text} ({r['verdict'].text.split(',')[0]})" for r in short)
    return (f"{len(short)} of {len(comparable)} comparable framework models fall short of the published accuracy: "
            f"{named}.")


def build(run: RunData) -> Section | None:
    """The section, for a run that trained a model with a published reference; None otherwise."""
    models = trained(run.rows)
    if not models:
        return None
    table = reference_table(models)
    return Section(SPEC.id, SPEC.title, answer(table), tables=[table, questions_table(run)])


SPEC = SectionSpec("paper", "The paper's questions, beside its figures", build, always=False)

__all__ = ["QUESTIONS", "REFERENCES", "SPEC", "Reference", "build", "reference_table", "trained", "verdict"]
