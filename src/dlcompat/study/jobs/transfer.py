"""Job `transfer`: every adversarial set made on a native model, run on one model derived from it.

The derived model is loaded exactly as its `evaluate` job loads it (same runtime, runner options and
artifact), in that job's environment, once: the sets of every attack and budget of the source run
through that one runner (one browser page, one interpreter), and the clean images once for all of
them. For each set it records the target's success rate next to the source's on the same images,
the transfer rate, the target's robust accuracy and how often the two models agree on the
adversarial examples. `variant` joins the attack setting and the derived model's route:
"fgsm eps=0.1 · torch.onnx (dynamo)".

An attack job that ended failed or unavailable (the plan lets this job run anyway) leaves one row
here, with that status and the attack's error, so the missing sets show beside the target's others.
A target that cannot be loaded or run fails the whole job: one row, one finding.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.attacks.transfer import transfer, transfer_variant
from dlcompat.runtimes import parking
from dlcompat.study.attack_plan import adversarial_role
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import model_runner

METRICS = ("transfer_success_rate", "transfer_source_success_rate", "transfer_rate", "transfer_robust_accuracy",
           "adversarial_agreement")


def _record_missing(ctx: JobContext, attack: str, upstream: dict[str, Any], route: str) -> None:
    error = (upstream.get("error") or "").strip().splitlines()
    reason = f": {error[0]}" if error else ""
    ctx.measure("transfer", None, variant=transfer_variant(attack, route), status=upstream["status"],
                error=f"no adversarial sets to transfer: {upstream.get('label') or attack} ended "
                      f"{upstream['status']}{reason}",
                method={"attack": attack, "route": route, "source_framework": ctx.cell["framework"]})


def run(ctx: JobContext) -> None:
    route = ctx.params.get("route", "")
    sets: list[dict[str, Any]] = []
    for attack in ctx.params["attacks"]:
        made = ctx.inputs[adversarial_role(attack)]
        if "upstream" in made:
            _record_missing(ctx, attack, made["upstream"], route)
        else:
            sets += made["sets"]
    outputs: list[dict[str, Any]] = []
    ctx.outputs.update(transfers=outputs)
    if not sets:
        return  # every attack is missing, and each says so: nothing to load the target for

    runner, parking_key = model_runner(ctx)  # as `evaluate` loads the same model
    parked = parking.take(parking_key)  # that evaluation's runner, still active, where it ran on this worker
    with contextlib.ExitStack() as active:  # released whether its load, or a set, fails
        if parked is None:
            active.enter_context(runner)
        else:
            runner = parked
            active.callback(runner.deactivate)
        info = runner.info()
        loaded = (AdversarialSet.load(ctx.artifacts.path(entry["artifact"])) for entry in sets)
        for number, (entry, result) in enumerate(zip(sets, transfer(runner, loaded), strict=True), start=1):
            figures = result.figures
            variant = transfer_variant(entry["variant"], route)
            method = {"attack": entry["attack"], "attack_variant": entry["variant"], "epsilon": entry["epsilon"],
                      "route": route, "source_framework": ctx.cell["framework"], "images": figures.images,
                      "both_correct": figures.both_correct, "target_clean_accuracy": figures.target_clean_accuracy,
                      "adversarial_set": entry["artifact"], **info,
                      "success": "on images both models classify correctly when clean"}
            values = (figures.target_success_rate, figures.source_success_rate, figures.transfer_rate,
                      figures.target_robust_accuracy, figures.adversarial_agreement)
            for metric, value in zip(METRICS, values, strict=True):
                ctx.measure(metric, value, "fraction", artifact=entry["artifact"], method=method, variant=variant)
            outputs.append({"variant": variant, **figures.to_dict()})
            ctx.progress({"set": number, "sets": len(sets), "variant": entry["variant"]})
    # whether the model was the one its evaluation left loaded on this worker (`runtimes/parking.py`)
    ctx.outputs.update(runtime=info, runner_reused=parked is not None)
