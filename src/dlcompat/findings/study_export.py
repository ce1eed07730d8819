"""A study's failure causes as reproducers, where the model the failing tool was given is an ONNX file.

The caller (the CLI, which groups a run's findings with `report.finding_groups`) passes each failed cause as a
`StudyCause`: the tool as the report names it, the error, the artifacts, the cells. A cause whose tool is one of
`findings/tools.py`'s and that has an ONNX artifact is run again standalone on that model (fed seeded standard-normal
inputs of the model's input shapes, symbolic dimensions 1); only when the standalone run fails with the same error
(`error_pattern` of the study's error) is it reduced and written, like a conformance cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.envs.registry import get_env

from .causes import env_versions, make_problem, reduce_cause, write_cause
from .conformance import BackendCase, Cause, Verdict, error_key
from .reproducer import Problem, error_pattern
from .routes import RouteServer
from .tools import tool

#: the catalogue of an export's reproducers, one entry per cause (the report's findings section shows it)
CATALOGUE = "catalogue.json"
#: the report's tool name (a prefix) -> the tool a reproducer drives; ONNX Runtime Web runs in a browser: not here
TOOL_NAMES = (("onnx2tf", "onnx2tf"), ("onnx2torch", "onnx2torch"), ("ONNX Runtime", "onnxruntime"))


@dataclass
class StudyCause:
    label: str  # the report's group number and tool: `G3 onnx2tf`
    tool: str  # the report's tool name
    error: str  # the underlying error of its first cell
    artifacts: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)


def tool_for(report_tool: str) -> str | None:
    if "Web" in report_tool:
        return None
    return next((name for prefix, name in TOOL_NAMES if report_tool.startswith(prefix)), None)


def seeded_inputs(model: object, seed: int = 0) -> list[np.ndarray]:
    """Standard-normal float32 inputs (integers: zeros) of the model's input shapes, symbolic dimensions 1."""
    from onnx import helper

    graph = model.graph  # type: ignore[attr-defined]
    initializers = {i.name for i in graph.initializer}
    rng = np.random.default_rng(seed)
    out = []
    for value in (v for v in graph.input if v.name not in initializers):
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        out.append(rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                   else np.zeros(shape, dtype))
    return out


def _export_one(cause: StudyCause, name: str, server: RouteServer, export: Path, taken: set[str],
                say: Callable[[str], None]) -> Problem | None:
    import onnx

    model_path = next((Path(a) for a in cause.artifacts if a.endswith(".onnx") and Path(a).exists()), None)
    if model_path is None:
        say(f"  {cause.label}: no ONNX model among its artifacts: left out")
        return None
    inputs = seeded_inputs(onnx.load(str(model_path)))
    answer = server.call(model_path, inputs)
    if answer.outputs is not None or not re.search(error_pattern(cause.error), answer.error):
        got = "it ran" if answer.outputs is not None else answer.error.splitlines()[0][:160]
        say(f"  {cause.label}: the standalone {name} run does not fail the same way ({got}): left out")
        return None
    verdict = Verdict(name, cause.label, "error", answer.error)
    group = Cause(name, "error", error_key(answer.error), [verdict])
    case = BackendCase(cause.label, model_path, inputs, [])
    spec = tool(name)
    reduced, reduction, note = reduce_cause(group, case, server, 0.0)
    try:
        problem = make_problem(group, reduced, reduction, note, spec, env_versions(spec.env, spec.packages),
                               get_env(spec.env).python, server, 0.0)
    except ValueError as exc:
        say(f"  {cause.label}: left out ({exc})")
        return None
    problem.source, problem.cells = f"the study's cause {cause.label} ({model_path.name})", cause.cells
    folder = write_cause(export, problem, reduced, spec, taken)
    problem.key = folder.name
    minimal = "true" if problem.minimal else f"false ({problem.minimal_note})"
    say(f"  {cause.label}: {problem.title} -> {folder} ({len(problem.op_types)} node(s), minimal: {minimal})")
    return problem


def export_study_causes(causes: Sequence[StudyCause], export: Path, say: Callable[[str], None] = lambda _m: None,
                        index: Path | None = None) -> list[Problem]:
    """A reproducer folder in `export` for each cause that reproduces standalone (see the module docstring), and the
    catalogue of them (`CATALOGUE` in `export`, and at `index` too: where the run's report finds it)."""
    export.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in export.iterdir()}
    servers: dict[str, RouteServer] = {}
    problems, entries = [], []
    try:
        for cause in causes:
            name = tool_for(cause.tool)
            if name is None:
                say(f"  {cause.label}: {cause.tool} is not a tool a reproducer drives here: left out")
                continue
            if name not in servers:  # one server per tool (setdefault would build, and leak, one per cause)
                servers[name] = RouteServer(tool(name))
            server = servers[name]
            problem = _export_one(cause, name, server, export, taken, say)
            if problem is not None:
                problems.append(problem)
                entries.append(catalogue_entry(cause.label.split()[0], problem, export / problem.key))
    finally:
        for server in servers.values():
            server.close()
    text = json.dumps({"export": str(export.resolve()), "causes": entries}, indent=2) + "\n"
    (export / CATALOGUE).write_text(text)
    if index is not None:
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(text)
    return problems


def catalogue_entry(label: str, problem: Problem, folder: Path) -> dict[str, Any]:
    """What the report's catalogue shows of a cause's reproducer (`report.finding_groups.reproducers` reads it)."""
    return {"label": label, "tool": problem.tool, "folder": str(folder.resolve()), "title": problem.title,
            "minimal": problem.minimal, "minimal_note": problem.minimal_note, "upstream": problem.upstream,
            "versions": problem.versions, "cells": problem.cells, "nodes": len(problem.op_types)}
