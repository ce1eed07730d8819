"""Job `attack`: one white-box attack on one natively trained model, in its framework's environment.

The model is the train job's own file, loaded by the framework's adapter; the attack is ART's, over
ART's classifier for the framework or over the adapter itself (`dlcompat.attacks.art`). For each
budget (each ε of FGSM/BIM/PGD; one for C&W, DeepFool, JSMA) the job stores the adversarial set as
a `.npz` (`dlcompat.attacks.adversarial_set`) and records success rate, robust accuracy,
perturbation norms and time, with the setting in `variant` ("fgsm eps=0.1").
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from typing import Any

import numpy as np

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.attacks.catalog import AttackSettings, attack_entry
from dlcompat.data.batching import to_float
from dlcompat.frameworks.base import Unavailable
from dlcompat.frameworks.registry import make_adapter
from dlcompat.metrics.robustness import attack_figures
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, spec_of

#: the pin a job whose environment lacks ART names (main and theano have it; a new environment may not)
ART_PIN = "adversarial-robustness-toolbox==1.20.1"


def _art() -> Any:
    try:
        art = importlib.import_module("dlcompat.attacks.art")
    except ImportError as exc:
        raise Unavailable(
            f"the Adversarial Robustness Toolbox is not installed in this environment ({sys.prefix}): "
            f"add {ART_PIN} to its requirements ({type(exc).__name__}: {exc})") from exc
    return art


def run(ctx: JobContext) -> None:
    entry = attack_entry(ctx.params["attack"])
    settings = AttackSettings.from_dict(ctx.params["settings"])
    framework, seed = ctx.cell["framework"], int(ctx.cell.get("seed") or 0)
    art = _art()
    data, spec = dataset_of(ctx), spec_of(ctx)
    count = min(settings.images, len(data.test.y))
    indices = np.arange(count, dtype=np.int64)  # the first images of the test split, the same for every model
    clean_images, labels = data.test.x[:count], data.test.y[:count].astype(np.int64)
    x = to_float(clean_images)

    adapter = make_adapter(framework, threads=ctx.threads)
    model = adapter.load(spec, ctx.artifacts.path(ctx.inputs["model"]["artifact"]))
    classifier, estimator = art.art_classifier(adapter, model, spec, x[:16], batch_size=settings.batch_size)
    if entry.gradient == "class":
        art.require_class_gradient(classifier, framework, entry.title)
    clean_pred = adapter.predict(model, x).argmax(axis=1)

    from dlcompat.attacks.generate import generate_adversarial

    batches = generate_adversarial(classifier, entry, x, labels, settings, seed, on_budget=ctx.progress)
    versions = {"art": metadata.version("adversarial-robustness-toolbox"), framework: adapter.version()}
    sets = []
    for batch in batches:
        adv_pred = adapter.predict(model, batch.images).argmax(axis=1)
        figures = attack_figures(x, batch.images, labels, clean_pred, adv_pred)
        info = {"attack": entry.name, "art_class": entry.art_class, "epsilon": batch.epsilon,
                "art_kwargs": batch.kwargs, "seed": seed, "framework": framework, "model": ctx.cell["model"],
                "dataset": ctx.cell["dataset"], "versions": versions, **estimator}
        adversarial = AdversarialSet(images=batch.images, labels=labels, source_predictions=adv_pred,
                                     clean_predictions=clean_pred, clean_images=clean_images, indices=indices,
                                     targets=batch.targets, attack=entry.name, variant=batch.variant, metadata=info)
        with ctx.artifacts.writing(".npz") as tmp:
            adversarial.save(tmp)
            path = ctx.artifacts.put_file(tmp, ".npz")
        sets.append({"attack": entry.name, "variant": batch.variant, "epsilon": batch.epsilon, "artifact": path})
        method = {**info, "images": figures.images, "clean_correct": figures.clean_correct,
                  "clean_accuracy": figures.clean_accuracy, "successes": figures.successes,
                  "threads": ctx.threads, "targeted": entry.targeted,
                  "success": "clean image classified correctly, adversarial one not",
                  "norms": "over the successful adversarial examples, images in [0, 1]"}
        for metric, value, unit in (
            ("attack_success_rate", figures.success_rate, "fraction"),
            ("robust_accuracy", figures.robust_accuracy, "fraction"),
            ("perturbation_l2_mean", figures.l2_mean, ""),
            ("perturbation_l2_max", figures.l2_max, ""),
            ("perturbation_linf_mean", figures.linf_mean, ""),
            ("perturbation_linf_max", figures.linf_max, ""),
            ("attack_time", batch.seconds, "s"),
            ("attack_time_per_image", batch.seconds / max(count, 1), "s"),
        ):
            ctx.measure(metric, value, unit, artifact=path, method=method, variant=batch.variant)
    ctx.outputs.update(sets=sets, attack=entry.name, images=count, estimator=estimator)
