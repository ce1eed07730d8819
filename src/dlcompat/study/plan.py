"""The planner: a study config expanded into a DAG of jobs (`dlcompat.study.dag`), looked up in the registries.

Every framework, converter chain and runtime the config names becomes train, convert, evaluate and
compare jobs; `attack_plan` adds the robustness jobs to the plan this builds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from dlcompat.converters.graph import Converter
from dlcompat.errors import ConfigError
from dlcompat.frameworks.registry import framework_entry, framework_names
from dlcompat.runtimes.base import runtime_entry, runtime_names
from dlcompat.study.attack_plan import plan_attacks
from dlcompat.study.config import StudyConfig
from dlcompat.study.dag import Job, Plan
from dlcompat.study.routes import find_route, weight_transfer_step


def _cell(dataset: str, model: str, framework: str, seed: int, target: str, variant: str = "") -> dict[str, Any]:
    return {"dataset": dataset, "model": model, "framework": framework, "seed": seed, "target": target,
            "variant": variant}


def _chains(config: StudyConfig, path: Sequence[Converter]) -> list[list[tuple[Converter, str]]]:
    """Every combination of the configured variants along a converter path."""
    options = [[(edge, v) for v in config.converters.get(edge.name, [edge.variants[0]])] for edge in path]
    return [list(combo) for combo in itertools.product(*options)]


def _calibration(config: StudyConfig, edge: Converter, variant: str) -> dict[str, Any]:
    """A calibrating variant's extra convert parameter: how many training images, drawn with which seed."""
    if variant not in edge.calibrated:
        return {}  # nothing added: every other convert job keeps its key
    return {"calibration": {"images": config.calibration_images, "seed": config.data.split_seed}}


def _describe(chain: list[tuple[Converter, str]], first: str = "") -> str:
    """A route as cells name it: its `first` step (a weight transfer, `Route.first_step`), then its converters."""
    return " → ".join([*([first] if first else []),
                       *(f"{edge.name} ({variant})" if variant else edge.name for edge, variant in chain)])


def _route(chain: list[tuple[Converter, str]], runtime: str, first: str = "") -> str:
    """A migration's route: its `first` step and converter chain, then the runtime that runs the result in the
    target framework (a chain that ends in the edge named as that runtime, its landing edge, already names it)."""
    steps = _describe(chain, first)
    return steps if chain and chain[-1][0].name == runtime else f"{steps} → {runtime}"


def _plan_conversions(plan: Plan, native: dict[str, Any], chain: list[tuple[Converter, str]], data: str,
                      trained: str, limits: dict[str, Any], first: str = "") -> str:
    """One convert job per step of `chain`, from the model of job `trained` (a train job, or the migrate job of a
    route's `first` step); the key of the last one."""
    where = f"{native['framework']}/{native['model']}/{native['dataset']}/seed{native['seed']}"
    upstream = trained
    for depth, (edge, variant) in enumerate(chain, start=1):
        cell = {**native, "target": edge.target, "variant": _describe(chain[:depth], first)}
        upstream = plan.add(Job("convert", edge.env,
                                {"cell": cell, "converter": edge.name, "variant": variant,
                                 "threads": plan.config.threads, **_calibration(plan.config, edge, variant)},
                                {"data": data, "model": upstream},
                                f"convert {where} {cell['variant']}", runtime=limits))
    return upstream


#: the test images a derived model's hop is localised on, and its source's noise floor measured on (issue 18)
LOCALISE_IMAGES = 16
#: the formats whose per-layer tensors the findings layer aligns
LOCALISED_FORMATS = ("onnx", "tflite", "pte", "tfjs", "savedmodel")
#: formats localised in a toolchain environment (the one whose runtime runs them); the others in the main one
LOCALISE_ENVS = {"savedmodel": "onnx2tf"}


def _plan_localisation(plan: Plan, native: dict[str, Any], chain: list[tuple[Converter, str]], data: str,
                       trained: str, artifact: str, limits: dict[str, Any], first: str = "") -> None:
    """A `localize` job for the ONNX / LiteRT artifact of convert job `artifact` (one per artifact, whichever
    runtimes run it), after its trained source's `noise_floor` job (one per trained model; a route through a
    weight transfer, `first`, is localised against the same trained weights)."""
    if not chain or chain[-1][0].target not in LOCALISED_FORMATS:
        return
    where = f"{native['framework']}/{native['model']}/{native['dataset']}/seed{native['seed']}"
    params = {"cell": native, "images": LOCALISE_IMAGES, "threads": plan.config.threads}
    floor = plan.add(Job("noise_floor", "main", params, {"data": data, "model": trained}, f"noise floor {where}",
                         runtime=limits))
    cell = {**native, "target": chain[-1][0].target, "variant": _describe(chain, first)}
    plan.add(Job("localize", LOCALISE_ENVS.get(cell["target"], "main"), {**params, "cell": cell},
                 {"data": data, "model": trained, "target": artifact, "floor": floor},
                 f"localize {where} {cell['variant']}", runtime=limits))


def _plan_weight_transfer(plan: Plan, native: dict[str, Any], into: str, data: str, trained: str,
                          limits: dict[str, Any]) -> str:
    """The `migrate` job that moves the model of train job `trained` into framework `into` (one per pair, whichever
    runtimes the route serves); its key."""
    where = f"{native['framework']}/{native['model']}/{native['dataset']}/seed{native['seed']}"
    cell = {**native, "target": into, "variant": weight_transfer_step(into)}
    return plan.add(Job("migrate", framework_entry(into).env,
                        {"cell": cell, "adapter": into, "threads": plan.config.threads},
                        {"data": data, "model": trained}, f"move {where} into {into} by weight transfer",
                        runtime=limits))


def plan_deployments(plan: Plan, native: dict[str, Any], data: str, model: str, source: str,
                     limits: dict[str, Any], skip: str = "", localise: bool = True, floor: str = "",
                     movable_into: tuple[str, ...] = ()) -> None:
    """Every runtime of the config for the model of job `model` (format: `native["framework"]`): the route to it
    (`study.routes`: a converter chain, after a weight transfer into one of the frameworks `movable_into` where the
    model's own has none), the derived model's localisation, then per runtime variant an evaluation and a comparison
    against the evaluation `source`. `skip`: a runtime not to plan (a check's own source runtime, already
    evaluated); `localise`: plan the per-layer localisation of each ONNX / LiteRT artifact (zoo models only);
    `floor`: a job whose measured floor each comparison judges the target's logits by (a check's `check_floor`)."""
    config = plan.config
    dataset, name, framework, seed = native["dataset"], native["model"], native["framework"], native["seed"]
    where = f"{framework}/{name}/{dataset}/seed{seed}"
    threads, latency = config.threads, config.latency.model_dump()
    for runtime in config.runtimes:
        entry = runtime_entry(runtime)
        try:
            route = find_route(framework, entry.accepts, movable_into)
        except ConfigError as exc:  # no route exists: a finding, not an error
            cell = _cell(dataset, name, framework, seed, runtime)
            plan.add(Job("unavailable", "main", {"cell": cell, "reason": f"{exc} (needed by {runtime})"},
                         {}, f"{where} in {runtime} (not run here)", runtime=limits))
            continue
        if runtime == skip and not route.path:
            continue
        start = _plan_weight_transfer(plan, native, route.via, data, model, limits) if route.via else model
        for chain in _chains(config, route.path):
            upstream = _plan_conversions(plan, native, chain, data, start, limits, route.first_step)
            if localise:
                _plan_localisation(plan, native, chain, data, model, upstream, limits, route.first_step)
            for runtime_variant in entry.variants:  # a browser runtime's backends, one evaluation each
                how = f"{runtime} {runtime_variant}".strip()
                described = _describe(chain, route.first_step)
                described = f"{described} · {runtime_variant}" if runtime_variant else described
                cell = _cell(dataset, name, framework, seed, runtime, described)
                params = {"cell": cell, "runtime": runtime, "latency": latency, "threads": threads}
                if runtime_variant:
                    params["runtime_variant"] = runtime_variant
                target = plan.add(Job("evaluate", entry.env, params, {"data": data, "model": upstream},
                                      f"evaluate {where} in {how}", runtime=limits))
                deps = {"source": source, "target": target, "data": data, **({"floor": floor} if floor else {})}
                plan.add(Job("compare", "main", {"cell": cell}, deps,
                             f"compare {where} {how} against {framework}", runtime=limits))


def _movable_into(framework: str, unavailable: dict[str, str], *also_not: str) -> tuple[str, ...]:
    """The frameworks a route from `framework` may move its weights into: every registered one but itself, those
    not installed here and `also_not`."""
    return tuple(f for f in framework_names() if f not in (framework, *also_not) and f not in unavailable)


def planned_frameworks(config: StudyConfig) -> list[str]:
    """The config's frameworks, with ["all"] expanded to every registered framework."""
    return framework_names() if config.frameworks == ["all"] else list(config.frameworks)


def build_plan(config: StudyConfig, data_dir: str | None = None, unavailable: dict[str, str] | None = None) -> Plan:
    """The study's DAG. `unavailable` maps framework -> reason (not installed here): its cells are recorded.
    (A check, `config.check`, is planned from its model file instead: `study.check_plan.build_check_plan`.)"""
    if config.check is not None:
        raise ValueError("a check's config is planned by study.check_plan.build_check_plan")
    plan = Plan(config)
    unavailable = unavailable or {}
    threads = config.threads
    latency = config.latency.model_dump()
    limits = {"timeout_s": config.timeout_s}
    for dataset in config.datasets:
        data = plan.add(Job("dataset", "main", {"dataset": dataset, **config.data.model_dump()}, {},
                            f"load {dataset}", runtime={"data_dir": data_dir, **limits}))
        for model, framework, seed in itertools.product(config.models, planned_frameworks(config), config.seeds):
            train = config.train.for_model(model)
            fw_env = framework_entry(framework).env
            where = f"{framework}/{model}/{dataset}/seed{seed}"
            native = _cell(dataset, model, framework, seed, framework)
            if framework in unavailable:
                plan.add(Job("unavailable", "main", {"cell": native, "reason": unavailable[framework]}, {},
                             f"{where} (not run here)", runtime=limits))
                continue
            trained = plan.add(Job("train", fw_env, {"cell": native, "train": train, "threads": threads},
                                   {"data": data}, f"train {where}", runtime=limits))
            if config.check_reproducibility and seed == config.seeds[0]:  # one more training, against the stored one
                plan.add(Job("reproduce", fw_env, {"cell": native, "train": train, "threads": threads},
                             {"data": data, "model": trained}, f"reproduce {where}", runtime=limits))
            source = plan.add(Job("evaluate", fw_env,
                                  {"cell": native, "runtime": "native", "latency": latency, "threads": threads},
                                  {"data": data, "model": trained}, f"evaluate {where} natively", runtime=limits))
            plan_deployments(plan, native, data, trained, source, limits,
                             movable_into=_movable_into(framework, unavailable))
            if config.migration:
                _plan_migrations(plan, config, data, native, trained, source, unavailable, limits)
    plan_attacks(plan, config, limits)  # after every derived model is planned: each gets its transfer jobs
    return plan


def _plan_migrations(plan: Plan, config: StudyConfig, data: str, native: dict[str, Any], trained: str, source: str,
                     unavailable: dict[str, str], limits: dict[str, Any]) -> None:
    """Every other framework as a target: by weight transfer, and by converters (ONNX and friends)."""
    dataset, model, framework, seed = native["dataset"], native["model"], native["framework"], native["seed"]
    where = f"{framework}/{model}/{dataset}/seed{seed}"
    threads, latency = config.threads, config.latency.model_dump()

    def compare(cell: dict[str, Any], target_key: str, label: str) -> None:
        plan.add(Job("compare", "main", {"cell": cell}, {"source": source, "target": target_key, "data": data},
                     f"compare {where} {label} against {framework}", runtime=limits))

    def unavailable_cell(cell: dict[str, Any], reason: str) -> None:
        plan.add(Job("unavailable", "main", {"cell": cell, "reason": reason}, {},
                     f"{where} → {cell['target']} [{cell['variant']}] (not run here)", runtime=limits))

    for target in planned_frameworks(config):
        if target == framework:
            continue
        if "weights" in config.migration:
            cell = _cell(dataset, model, framework, seed, target, "weight transfer")
            if target in unavailable:
                unavailable_cell(cell, unavailable[target])
            else:
                key = plan.add(Job("evaluate", framework_entry(target).env,
                                   {"cell": cell, "runtime": "weights", "adapter": target, "artifact_key": "weights",
                                    "latency": latency, "threads": threads},
                                   {"data": data, "model": trained}, f"evaluate {where} in {target} by weight transfer",
                                   runtime=limits))
                compare(cell, key, f"{target} (weight transfer)")
        if "converters" in config.migration:
            landing = [r for r in runtime_names(include_framework=True) if runtime_entry(r).framework == target]
            if not landing:
                unavailable_cell(_cell(dataset, model, framework, seed, target, "converter"),
                                 f"no converter into {target} exists (none takes ONNX or any other format to it)")
                continue
            # a route may start with a weight transfer, but not into the target itself (that is the other migration)
            movable_into = _movable_into(framework, unavailable, target)
            for runtime in landing:
                entry = runtime_entry(runtime)
                try:
                    route = find_route(framework, entry.accepts, movable_into)
                except ConfigError as exc:
                    unavailable_cell(_cell(dataset, model, framework, seed, target, f"converter: {runtime}"), str(exc))
                    continue
                start = _plan_weight_transfer(plan, native, route.via, data, trained, limits) if route.via else trained
                for chain in _chains(config, route.path):
                    upstream = _plan_conversions(plan, native, chain, data, start, limits, route.first_step)
                    _plan_localisation(plan, native, chain, data, trained, upstream, limits, route.first_step)
                    cell = _cell(dataset, model, framework, seed, target, _route(chain, runtime, route.first_step))
                    key = plan.add(Job("evaluate", entry.env, {"cell": cell, "runtime": runtime, "latency": latency,
                                                               "threads": threads},
                                       {"data": data, "model": upstream}, f"evaluate {where} in {target} via {runtime}",
                                       runtime=limits))
                    compare(cell, key, f"{target} via {runtime}")
