"""`dlcompat conformance`: the backend test cases through each route, the matrix, and a reproducer per cause.

ONNX Runtime runs first (its answers set each case's noise floor, `conformance.floors_of`), then each other route
in turn, in its own server (ONNX Runtime Web: its page, `ortweb.OrtWebServer`); a route's causes are reduced and
written while its server is still up. The matrix and the causes (each with `minimal`: "1-minimal, ..." and each kept
node's reason, or why not proven) go to `conformance.json` in the export folder, beside one reproducer folder per
cause; a browser route's folder has no repro.py (its ISSUE.md says how to reproduce it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dlcompat.envs.registry import get_env

from .causes import env_versions, make_problem, reduce_cause, write_cause
from .conformance import (
    SUITES,
    BackendCase,
    Cause,
    Verdict,
    error_key,
    floors_of,
    group_causes,
    load_cases,
    op_signature,
    rms,
    run_route,
)
from .ortweb import NAME as ORTWEB
from .ortweb import OrtWebServer
from .reproducer import Problem, issue_text
from .routes import Route, RouteServer
from .tools import TOOLS, Tool, tool

ROUTES = (*TOOLS, ORTWEB)
REPORT = "conformance.json"


@dataclass
class ConformanceResult:
    cases: int
    skipped: list[str]
    verdicts: list[Verdict] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for verdict in self.verdicts:
            row = out.setdefault(verdict.route, {"pass": 0, "error": 0, "mismatch": 0, "timeout": 0})
            row[verdict.status] += 1
        return out


def catalogue_line(problem: Problem) -> str:
    """One line of the catalogue: the folder, the title, the cases, whether 1-minimal (or why not), upstream."""
    minimal = "true" if problem.minimal else f"false ({problem.minimal_note or 'not reduced'})"
    return (f"{problem.key}: {problem.title} ({len(problem.cells)} case(s); {len(problem.op_types)} node(s), "
            f"minimal: {minimal}){f'; upstream {problem.upstream}' if problem.upstream else ''}")


def relative_floor(floors: Sequence[float], expected: Sequence[np.ndarray]) -> float:
    """The case's largest noise floor as a fraction of its output's rms."""
    fractions = [f / rms(w) for f, w in zip(floors, expected, strict=True) if rms(w) > 0]
    return max(fractions, default=0.0)


def _server(route: str) -> RouteServer | OrtWebServer:
    """The route's server: a tool's process in its environment, or ONNX Runtime Web's page."""
    return OrtWebServer() if route == ORTWEB else RouteServer(tool(route))


def _tool_versions(route: str, server: Route) -> tuple[Tool, dict[str, str]]:
    if isinstance(server, OrtWebServer):
        return server.tool, server.versions()
    spec = tool(route)
    return spec, env_versions(spec.env, spec.packages)


def _causes_of(route: str, server: Route, verdicts: list[Verdict], cases: dict[str, BackendCase],
               floors: dict[str, list[float]], export: Path | None, taken: set[str],
               say: Callable[[str], None]) -> tuple[list[Cause], list[Problem]]:
    """Group the route's failures, reduce each group's smallest case, and write one reproducer per cause."""
    spec, versions = _tool_versions(route, server)
    python = get_env(spec.env).python
    causes, problems, seen = group_causes(verdicts, cases), [], {}
    for cause in causes:
        case = min((cases[name] for name in cause.cases), key=lambda c: (c.nodes, c.name))
        fraction = relative_floor(floors[case.name], case.outputs)
        try:
            reduced, reduction, note = reduce_cause(cause, case, server, fraction)
            problem = make_problem(cause, reduced, reduction, note, spec, versions, python, server, fraction)
        except Exception as exc:  # one cause that cannot be made a reproducer does not stop the others
            cause.note = f"left out: {exc}"
            say(f"    {route}: {cause.key[:100]}: left out ({exc})")
            continue
        cause.reduced_ops, cause.note, cause.minimal = problem.op_types, note, problem.minimal_note
        identity = (problem.kind, op_signature(reduced.model.graph.node),
                    error_key(problem.happened) if cause.kind == "error" else "")
        if identity in seen:  # the same reduced failure as an earlier group: one cause
            seen[identity].cells += cause.cases
            cause.folder = seen[identity].key
            continue
        seen[identity] = problem
        problems.append(problem)
        if export is not None:
            folder = write_cause(export, problem, reduced, spec, taken)
            cause.folder = problem.key = folder.name
        say(f"    {route}: {problem.title} [{len(problem.op_types)} node(s); {len(cause.cases)} case(s)]")
    if export is not None:  # merged groups add their cases to the folder written first
        for problem in problems:
            folder = export / problem.key
            if folder.exists():
                (folder / "finding.json").write_text(json.dumps(problem.to_dict(), indent=2) + "\n")
                (folder / "ISSUE.md").write_text(issue_text(problem, folder))
    return causes, problems


def run_conformance(routes: Sequence[str] = ROUTES, suites: Sequence[str] = SUITES, export: Path | None = None,
                    *, limit: int | None = None, match: str = "", say: Callable[[str], None] = lambda _m: None
                    ) -> ConformanceResult:
    """The cases of `suites` (those whose name holds `match`; the first `limit`) through `routes`."""
    cases, skipped = load_cases(suites)
    cases = [c for c in cases if match in c.name]
    cases = cases[:limit] if limit else cases
    by_name = {c.name: c for c in cases}
    say(f"{len(cases)} backend test cases ({len(skipped)} left out, each with its reason in {REPORT}); routes: "
        f"{', '.join(routes)}")
    result = ConformanceResult(len(cases), skipped)
    taken: set[str] = set()
    if export is not None:
        export.mkdir(parents=True, exist_ok=True)
    with RouteServer(tool("onnxruntime")) as ort:
        verdicts, answers = run_route(ort, cases, None, say)
        # a model the version converter made that ONNX Runtime rejects is the converter's problem, not a case
        invalid = {v.case for v in verdicts if v.status == "error" and "@opset" in v.case}
        result.skipped += [f"{name} (converted by ONNX's version converter, then rejected by ONNX Runtime: "
                           f"{answers[name].error[:160]})" for name in sorted(invalid)]
        verdicts = [v for v in verdicts if v.case not in invalid]
        cases = [c for c in cases if c.name not in invalid]
        result.cases = len(cases)
        floors = {c.name: floors_of(answers[c.name], c.outputs) for c in cases}
        if "onnxruntime" in routes:
            result.verdicts += verdicts
            causes, problems = _causes_of("onnxruntime", ort, verdicts, by_name, floors, export, taken, say)
            result.causes += causes
            result.problems += problems
    for route in (r for r in routes if r != "onnxruntime"):
        with _server(route) as server:
            verdicts, _ = run_route(server, cases, floors, say)
            result.verdicts += verdicts
            causes, problems = _causes_of(route, server, verdicts, by_name, floors, export, taken, say)
            result.causes += causes
            result.problems += problems
    if export is not None:
        (export / REPORT).write_text(json.dumps({
            "cases": result.cases, "skipped": skipped, "counts": result.counts(),
            "verdicts": [asdict(v) for v in result.verdicts],
            "causes": [{**asdict(c), "verdicts": [v.case for v in c.verdicts]} for c in result.causes],
        }, indent=2, default=str) + "\n")
    return result
