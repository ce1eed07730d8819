"""A conformance cause made a reproducer: its smallest case reduced with the route itself as the check, the versions
of the environment it failed in, the issue text, and the folder (`findings/reproducer.py`).

The check is "fails the same way": for an error, the route's error matches the regex made from the first error
(`reproducer.error_pattern`); for a mismatch, some output is beyond `K_NOISE` times the case's noise floor, carried
over to the subgraph's outputs as a fraction of their rms (see `findings/conformance.py`). Causes whose reduced
models hold the same operators and fail the same way are merged, so no two reproducers share a cause.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dlcompat.envs.registry import get_env
from dlcompat.metrics.noise import FP32_EPS, K_NOISE

from .conformance import BackendCase, Cause, error_key, judge, rms
from .reduce import CannotJudge, Case, Reduction, reduce_model
from .reproducer import Problem, error_pattern, write_reproducer
from .routes import ROUTE_TIMEOUT, Answer, Route
from .tools import Tool

#: causes already reported upstream: (tool, a regex over the cause's title) -> the issue, found with the search
#: tool's `issues` corpus when this catalogue was made (README, "What dlcompat has found")
UPSTREAM: tuple[tuple[str, str, str], ...] = (
    ("onnx2torch", r"operation_type='SplitToSequence'", "https://github.com/ENOT-AutoDL/onnx2torch/pull/181 "
     "(a SplitToSequence converter proposed, closed unmerged)"),
    ("onnx2tf", r"Exception encountered when calling layer \"tf\.math\.add_N?.*Expand", "related: "
     "https://github.com/PINTO0309/onnx2tf/issues/772 (Expand then a broadcast op: 'Dimensions must be equal')"),
    ("onnx2tf", r"tfl\.prelu", "related: https://github.com/PINTO0309/onnx2tf/issues/418 (PRelu slope shapes; "
     "closed)"),
    ("onnx2torch", r"operation_type='GlobalMaxPool'", "https://github.com/ENOT-AutoDL/onnx2torch/issues/235 (open)"),
    ("onnx2torch", r"\"SAME_UPPER\" auto_pad is not implemented", "https://github.com/ENOT-AutoDL/onnx2torch/issues/"
     "148 (open; a fix proposed in https://github.com/ENOT-AutoDL/onnx2torch/pull/246, open)"),
    ("onnx2torch", r"\"SAME_LOWER\" auto_pad is not implemented", "related: https://github.com/ENOT-AutoDL/onnx2torch/"
     "issues/148 (SAME_UPPER: the same unimplemented auto_pad branch; open)"),
    ("onnx2torch", r"AvgPool with non symmetrical padding", "https://github.com/ENOT-AutoDL/onnx2torch/issues/203 and "
     "https://github.com/ENOT-AutoDL/onnx2torch/issues/172 (both open)"),
)


def env_versions(env_name: str, packages: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution of `packages` in toolchain environment `env_name`."""
    code = ("import json, sys\nfrom importlib import metadata\nout = {}\nfor name in sys.argv[1:]:\n"
            "    try: out[name] = metadata.version(name)\n    except metadata.PackageNotFoundError: pass\n"
            "print(json.dumps(out))\n")
    env = get_env(env_name)
    done = subprocess.run([str(env.interpreter()), "-c", code, *packages], capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _ask(server: Route, case: Case) -> Answer:
    with tempfile.TemporaryDirectory(prefix="dlcompat-reduce-") as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(case.model.SerializeToString())
        return server.call(path, list(case.inputs.values()))


def _cannot_judge(case: Case, answer: Answer, tool: str) -> None:
    """CannotJudge where the route ran past its time limit, or the candidate has sequence-typed inputs the tool
    rejects, or sequence-typed outputs it does not hand back as sequences: the removal is valid ONNX, but whether the
    failure stays cannot be told."""
    if answer.outputs is None and answer.error.startswith(ROUTE_TIMEOUT):
        raise CannotJudge(f"cannot remove: {tool} ran past the time limit on the rest")
    inputs = [n for n, v in case.inputs.items() if isinstance(v, list)]
    if inputs and answer.outputs is None:
        first = next((s.strip() for s in answer.error.splitlines() if s.strip()), "")[:120]
        raise CannotJudge(f"cannot remove: {tool} does not run the rest with the sequence-typed input "
                          f"{', '.join(inputs)} it leaves ({first})")
    outputs = [n for (n, v), got in zip(case.outputs.items(), answer.outputs or [], strict=False)
               if isinstance(v, list) and not isinstance(got, list)]
    if outputs:
        raise CannotJudge(f"cannot remove: the rest ends in the sequence-typed {', '.join(outputs)}, which {tool} "
                          f"does not hand back as a sequence")


def same_failure(cause: Cause, server: Route, relative_floor: float) -> Callable[[Case], bool]:
    """The check a reduction keeps: the cause's error (by regex), or a mismatch beyond the carried-over floor;
    CannotJudge where sequence-typed values left by a removal make it impossible to tell (`_cannot_judge`)."""
    if cause.kind == "error":
        pattern = re.compile(error_pattern(cause.verdicts[0].detail))

        def errs(case: Case) -> bool:
            answer = _ask(server, case)
            if answer.outputs is None and pattern.search(answer.error):
                return True
            _cannot_judge(case, answer, server.tool.name)
            return False

        return errs

    def mismatches(case: Case) -> bool:
        want = list(case.outputs.values())
        floors = [max(relative_floor, FP32_EPS) * rms(w) for w in want]
        answer = _ask(server, case)
        _cannot_judge(case, answer, server.tool.name)
        return judge(answer, want, floors, server.tool)[0] == "mismatch"

    return mismatches


def _feeds(model: object, case: BackendCase) -> dict[str, Any]:
    graph = model.graph  # type: ignore[attr-defined]
    initializers = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    return dict(zip(names, case.inputs, strict=False))


def reduce_cause(cause: Cause, case: BackendCase, server: Route, relative_floor: float
                 ) -> tuple[Case, Reduction | None, str]:
    """The reduced case (or the whole case where the check does not hold against golden values), and a note."""
    import onnx

    model = onnx.load(str(case.model_path))
    feeds = _feeds(model, case)
    check = same_failure(cause, server, relative_floor)
    try:
        reduction = reduce_model(model, feeds, check)
    except Exception as exc:  # it does not fail against golden values, or no golden values could be computed
        whole = Case(model, feeds, {o.name: v for o, v in zip(model.graph.output, case.outputs, strict=False)})
        return whole, None, f"not reduced ({exc}; the whole case is the reproducer)"
    return reduction.case, reduction, "; ".join(reduction.steps)


def _title(tool: str, version: str, cause: Cause, ops: Sequence[str], happened: str) -> str:
    happened = re.sub(r"\x1b\[[0-9;]*m", "", happened)  # a tool's terminal colours
    model = " -> ".join(ops) if len(ops) <= 4 else f"{len(ops)}-node"
    if cause.kind == "error":
        first = next((s.strip() for s in happened.splitlines() if s.strip()), "")
        return f"{tool} {version}: {first[:200]} ({model} model)"
    return f"{tool} {version}: wrong result for a {model} model ({happened.split(' (')[0]})"


def upstream_of(tool: str, title: str) -> str:
    return next((url for name, pattern, url in UPSTREAM if name == tool and re.search(pattern, title)), "")


def make_problem(cause: Cause, case: Case, reduction: Reduction | None, note: str, tool: Tool,
                 versions: dict[str, str], python: str, server: Route, relative_floor: float) -> Problem:
    """The problem the reduced case shows, with the route's answer on it; ValueError where it shows none."""
    want = list(case.outputs.values())
    floors = [max(relative_floor, FP32_EPS) * rms(w) for w in want]
    answer = _ask(server, case)
    status, happened, figures = judge(answer, want, floors, tool)
    if status == "pass" or (cause.kind == "error") != (status == "error"):
        raise ValueError(f"the {'reduced ' if reduction else ''}case does not fail the same way standalone "
                         f"({status}: {happened[:160] or 'its outputs are within the noise'})")
    ops = [n.op_type for n in case.model.graph.node]
    version = versions.get(tool.name, "?")
    title = _title(tool.name, version, cause, ops, happened)
    expected = ("the model runs and gives ONNX Runtime's outputs (which match the ONNX backend test's expected "
                "outputs within their noise)")
    return Problem(
        key=error_key(happened)[:40], tool=tool.name, kind=cause.kind, title=title, happened=happened[:2000],
        expected=expected, pattern=error_pattern(happened) if cause.kind == "error" else "",
        tolerance=[K_NOISE * f for f in floors] if cause.kind == "mismatch" else [0.0] * len(want),
        tolerance_note=(f"Tolerance per output: K = {K_NOISE} times the noise floor, ONNX Runtime's own rmse "
                        f"against the backend test's expected output on the original case as a fraction of its rms"
                        f" ({relative_floor:.3g}), never below float32's rounding (dlcompat.metrics.noise)."),
        versions=versions, python=python, source=f"ONNX's backend test case {cause.verdicts[0].case}",
        cells=cause.cases, op_types=ops, reduction=note.split("; "),
        minimal=bool(reduction and reduction.minimal), upstream=upstream_of(tool.name, title),
        minimal_note=reduction.why if reduction else "not proven minimal: not reduced (the whole case)",
        figures={k: v for k, v in figures.items() if k != "tolerance"} if status == "mismatch" else {})


def folder_name(problem: Problem, taken: set[str]) -> str:
    ops = "-".join(dict.fromkeys(problem.op_types))[:40] or "model"
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{problem.tool}-{problem.kind}-{ops}").strip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def write_cause(export: Path, problem: Problem, case: Case, tool: Tool, taken: set[str]) -> Path:
    """The reproducer folder of `problem` in `export`, named (and `problem.key` set) by `folder_name`."""
    problem.key = folder_name(problem, taken)
    return write_reproducer(export / problem.key, problem, tool, case.model, list(case.inputs.values()),
                            list(case.outputs.values()))
