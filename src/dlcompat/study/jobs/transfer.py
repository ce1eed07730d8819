"""Job `transfer`: one attack's adversarial sets, made on a native model, run on one model derived from it.

The derived model is loaded exactly as its `evaluate` job loads it (same runtime, runner options and
artifact), in that job's environment. For each set it records the target's success rate next to the
source's on the same images, the transfer rate, the target's robust accuracy and how often the two
models agree on the adversarial examples. `variant` joins the attack setting and the derived model's
route: "fgsm eps=0.1 · torch.onnx (dynamo)".
"""

from __future__ import annotations

from dlcompat.attacks.adversarial_set import AdversarialSet
from dlcompat.attacks.transfer import transfer, transfer_variant
from dlcompat.runtimes.base import runner_class
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import spec_of


def run(ctx: JobContext) -> None:
    model = ctx.inputs["model"]
    path = ctx.artifacts.path(model[ctx.params.get("artifact_key", "artifact")])
    runtime = ctx.params["runtime"]
    options = {"framework": ctx.params.get("adapter", ctx.cell["framework"]), "spec": spec_of(ctx),
               "variant": ctx.params.get("runtime_variant", "")}  # as `evaluate` loads the same model
    runner = runner_class(runtime)(path, input_layout=model.get("input_layout", "NHWC"), threads=ctx.threads,
                                   **options)
    sets = ctx.inputs["adversarial"]["sets"]
    route = ctx.params.get("route", "")
    outputs = []
    runner.activate()
    try:
        info = runner.info()
        loaded = (AdversarialSet.load(ctx.artifacts.path(entry["artifact"])) for entry in sets)
        for entry, result in zip(sets, transfer(runner, loaded), strict=True):
            figures = result.figures
            variant = transfer_variant(entry["variant"], route)
            method = {"attack": entry["attack"], "attack_variant": entry["variant"], "epsilon": entry["epsilon"],
                      "route": route, "source_framework": ctx.cell["framework"], "images": figures.images,
                      "both_correct": figures.both_correct, "target_clean_accuracy": figures.target_clean_accuracy,
                      "adversarial_set": entry["artifact"], **info,
                      "success": "on images both models classify correctly when clean"}
            for metric, value in (
                ("transfer_success_rate", figures.target_success_rate),
                ("transfer_source_success_rate", figures.source_success_rate),
                ("transfer_rate", figures.transfer_rate),
                ("transfer_robust_accuracy", figures.target_robust_accuracy),
                ("adversarial_agreement", figures.adversarial_agreement),
            ):
                ctx.measure(metric, value, "fraction", artifact=entry["artifact"], method=method, variant=variant)
            outputs.append({"variant": variant, **figures.to_dict()})
    finally:
        runner.deactivate()
    ctx.outputs.update(transfers=outputs, runtime=info)
