"""The robustness part of the plan: attack every natively trained model, transfer to every model derived from it.

It reads the plan the planner built, so it needs no knowledge of how models are derived: an `attack`
job follows each `train` job (in that framework's environment, one job per attack covering all its
budgets), and one `transfer` job follows for every `evaluate` job whose model descends from that
train job through `convert` jobs (ONNX Runtime, converter migrations) or reads its weights directly
(weight transfer). That transfer job depends on every attack job of the source and runs all their
adversarial sets in one load of the derived model (one browser page, one interpreter), so the plan
grows by one job per derived model, not one per attack and derived model. It tolerates an attack
that failed or was unavailable (`Job.tolerates`): the other attacks' sets still transfer, and the
missing one is recorded. A new derived model — a new runtime, converter or migration route — is
one more `evaluate` job in the plan and gets its transfer job with no change here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlcompat.attacks.catalog import AttackSettings, attack_entry
from dlcompat.attacks.transfer import transfer_variant
from dlcompat.study.dag import Job, Plan

if TYPE_CHECKING:  # the config needs pydantic, which a worker's environment may lack (a transfer job reads this)
    from dlcompat.study.config import StudyConfig

#: the runtime under which the planner evaluates a framework's own file: the attacked model, not a derived one
NATIVE_RUNTIME = "native"
#: the evaluate job's parameters that say how its model is loaded and run; a transfer job loads it the same way
RUNNER_PARAMS = ("runtime", "runtime_variant", "adapter", "artifact_key")


def trained_source(plan: Plan, key: str) -> str | None:
    """The train job a model artifact descends from (through convert and migrate jobs), or None."""
    job = plan.jobs.get(key)
    while job is not None and job.kind in ("convert", "migrate"):
        job = plan.jobs.get(job.deps.get("model", ""))
    return job.key if job is not None and job.kind == "train" else None


def derived_evaluations(plan: Plan, trained: str) -> list[Job]:
    """Every evaluate job of a model derived from the train job `trained` (its native evaluation excluded)."""
    return [job for job in plan.jobs.values()
            if job.kind == "evaluate" and job.params.get("runtime") != NATIVE_RUNTIME
            and trained_source(plan, job.deps.get("model", "")) == trained]


def adversarial_role(attack: str) -> str:
    """The dependency role under which a transfer job reads one attack job's outputs."""
    return f"adversarial:{attack}"


def plan_attacks(plan: Plan, config: StudyConfig, limits: dict[str, Any]) -> None:
    """Add the attack and transfer jobs of `config.attacks` to `plan` (nothing when it names no attack)."""
    attacks = config.attacks
    if not attacks.methods:
        return
    settings = AttackSettings.from_dict(attacks.model_dump())
    entries = [attack_entry(name) for name in attacks.methods]
    for trained in [job for job in plan.jobs.values() if job.kind == "train"]:
        cell = trained.params["cell"]
        where = f"{cell['framework']}/{cell['model']}/{cell['dataset']}/seed{cell['seed']}"
        made = {}
        for entry in entries:
            made[adversarial_role(entry.name)] = plan.add(Job(
                "attack", trained.env,
                {"cell": {**cell, "variant": entry.name}, "attack": entry.name,
                 "settings": entry.key_settings(settings), "threads": config.threads},
                {"data": trained.deps["data"], "model": trained.key},
                f"attack {where} with {entry.title}", runtime=limits))
        targets = [job for job in derived_evaluations(plan, trained.key)
                   if attacks.transfer is True or (attacks.transfer and job.params["runtime"] in attacks.transfer)]
        for target in targets:
            target_cell, route = target.params["cell"], target.params["cell"].get("variant", "")
            # the job's own rows (the target failed) name the attacks and the route; each set's rows its setting
            params = {"cell": {**target_cell, "variant": transfer_variant(", ".join(attacks.methods), route)},
                      "route": route, "attacks": list(attacks.methods), "threads": config.threads,
                      **{k: target.params[k] for k in RUNNER_PARAMS if k in target.params}}
            shown = f" [{route}]" if route else ""
            titles = ", ".join(entry.title for entry in entries)
            plan.add(Job("transfer", target.env, params,
                         {"data": target.deps["data"], "model": target.deps["model"], **made},
                         f"transfer {titles} of {where} to {target_cell['target']}{shown}",
                         runtime={**limits, "follows": target.key}, tolerates=tuple(made)))
