"""ONNX's own backend test cases run through every ONNX-consuming route here, judged against a measured noise floor,
their failures grouped by cause, each cause reduced and written as a reproducer (issue 19).

The cases: the `onnx` package's `onnx/backend/test/data/{simple,pytorch-converted,pytorch-operator,node}` folders
(a `model.onnx` and `test_data_set_0/` of inputs and expected outputs as TensorProtos), and the `canary` suite of
operators users report as fragile (`findings/canary.py`, written in the same layout); cases whose inputs or
outputs are not plain numeric tensors (sequences, optionals, strings) or that use training-only operators
(`ai.onnx.preview.training`) are left out and counted, with the reason. A case of an opset before 7 (ONNX
Runtime's documented support starts there) is converted to opset 13 by ONNX's version converter first (the case is
then named `...@opset13`, and its converted model is what every route runs); one the converter cannot convert is left
out. The routes: ONNX Runtime (the main environment), onnx2torch and onnx2tf (each in its toolchain environment),
each served by a `RouteServer`, and ONNX Runtime Web's wasm backend in one page of headless Chromium
(`findings/ortweb.py`). A case a route cuts at its own time limit is "timeout": not judged, no cause.

**Pass rule.** ONNX Runtime runs every case first; per output, its noise floor is ONNX Runtime's own rmse against the
expected output, never below float32's rounding of that output (`FP32_EPS x rms(expected)`). A route passes a case
when every output has the expected shape (an onnx2tf output with channels moved last is moved back) and its rmse
against the expected output is at most `K_NOISE` (2.5, `dlcompat.metrics.noise`) times that floor. A reduced
subgraph is judged the same way against ONNX Runtime's golden values of its outputs, with the original case's floor
carried over as a fraction of each output's rms.

**Causes.** A failure is an error (grouped by tool and the error's first line with numbers, quoted names and paths
made free, `error_pattern`) or a numeric mismatch (grouped by tool and the operator types of the case with their
modes: the values of string attributes such as `auto_pad` or Pad's `mode`, `op_signature`). The
smallest case of each group is reduced (`findings/reduce.py`, the route itself as the check); groups whose reduced
models hold the same operators with the same failure are one cause. Each cause becomes a reproducer folder.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.metrics.noise import FP32_EPS, K_NOISE

from . import canary
from .reproducer import is_free
from .routes import ROUTE_TIMEOUT, Answer, Route
from .tools import Tool

SUITES = ("simple", "pytorch-converted", "pytorch-operator", "node", canary.SUITE)
#: training-only operators (Gradient): not an inference runtime's job, so such cases are left out
TRAINING_DOMAIN = "ai.onnx.preview.training"
#: the oldest opset ONNX Runtime supports, by design (its docs/Versioning.md, "Backwards compatibility"; closed as
#: by design in microsoft/onnxruntime#967): older cases cannot get a floor from it, so they are left out
MIN_OPSET = 7
#: ... so they are converted to this opset first (ONNX's version converter), the case's name marked `@opset13`
UPGRADE_OPSET = 13


@dataclass
class BackendCase:
    name: str  # `<suite>/<test folder>`
    model_path: Path
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    nodes: int = 0
    op_types: tuple[str, ...] = ()
    signature: str = ""  # `op_signature` of its nodes


@dataclass
class Verdict:
    route: str
    case: str
    status: str  # "pass" | "error" | "mismatch" | "timeout" (the route's time limit: not judged)
    detail: str = ""
    figures: dict[str, float] = field(default_factory=dict)


def op_signature(nodes: Sequence[Any]) -> str:
    """The operator types of `nodes`, each once, with their modes: `AveragePool[auto_pad=SAME_LOWER] Pad[mode=edge]`
    (string attributes select a behaviour; numbers only size it)."""
    from onnx import AttributeProto

    def one(node: Any) -> str:
        modes = [f"{a.name}={a.s.decode(errors='replace')}" for a in node.attribute if a.type == AttributeProto.STRING]
        return node.op_type + (f"[{','.join(sorted(modes))}]" if modes else "")

    return " ".join(dict.fromkeys(one(node) for node in nodes))


def backend_root() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def _left_out(model: Any) -> str:
    """Why a case is left out, or "" (see the module docstring)."""
    if any(not v.type.HasField("tensor_type") for v in (*model.graph.input, *model.graph.output)):
        return "not a plain tensor"
    if any(node.domain == TRAINING_DOMAIN for node in model.graph.node):
        return "training-only operators"
    return ""


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)


def upgraded(model: Any) -> Any:
    """`model` converted to `UPGRADE_OPSET` by ONNX's version converter where its opset is before `MIN_OPSET`."""
    from onnx import version_converter

    return version_converter.convert_version(model, UPGRADE_OPSET) if _opset(model) < MIN_OPSET else model


def load_cases(suites: Sequence[str] = SUITES, root: Path | None = None, workdir: Path | None = None
               ) -> tuple[list[BackendCase], list[str]]:
    """The backend test cases of `suites` (those present), and those left out with the reason; models converted to
    a newer opset are written to `workdir` (default: a temporary folder)."""
    import onnx
    from onnx import numpy_helper

    root = root or backend_root()
    cases, skipped = [], []
    for suite in suites:
        if suite == canary.SUITE and not (root / suite).exists():  # written for this run, then read as any suite
            workdir = workdir or Path(tempfile.mkdtemp(prefix="dlcompat-conformance-"))
            folder_of_suite = canary.write_suite(workdir)
        else:
            folder_of_suite = root / suite
        for folder in sorted(p for p in folder_of_suite.glob("*") if (p / "model.onnx").exists()):
            data = folder / "test_data_set_0"
            model = onnx.load(str(folder / "model.onnx"))
            reason = _left_out(model)
            if not reason and _opset(model) < MIN_OPSET:
                try:
                    model = upgraded(model)
                    onnx.checker.check_model(model)
                except Exception as exc:  # the converter has no adapter for one of its operators
                    reason = f"opset {_opset(model)}, not convertible to {UPGRADE_OPSET}: {str(exc)[:80]}"
            if reason:
                skipped.append(f"{suite}/{folder.name} ({reason})")
                continue
            try:
                arrays = {p.stem: numpy_helper.to_array(onnx.load_tensor(str(p))) for p in data.glob("*.pb")}
            except Exception:  # a sequence or optional, which load_tensor does not read
                skipped.append(f"{suite}/{folder.name} (not a plain tensor)")
                continue
            if any(a.dtype == object for a in arrays.values()):
                skipped.append(f"{suite}/{folder.name} (strings: not numbers to compare)")
                continue
            n_in = sum(k.startswith("input_") for k in arrays)
            n_out = sum(k.startswith("output_") for k in arrays)
            path, name = folder / "model.onnx", f"{suite}/{folder.name}"
            if model.opset_import != onnx.load(str(path), load_external_data=False).opset_import:
                workdir = workdir or Path(tempfile.mkdtemp(prefix="dlcompat-conformance-"))
                path, name = workdir / f"{suite}-{folder.name}.onnx", f"{name}@opset{UPGRADE_OPSET}"
                onnx.save(model, str(path))
            cases.append(BackendCase(name, path,
                                     [arrays[f"input_{i}"] for i in range(n_in)],
                                     [arrays[f"output_{i}"] for i in range(n_out)], len(model.graph.node),
                                     tuple(dict.fromkeys(n.op_type for n in model.graph.node)),
                                     op_signature(model.graph.node)))
    return cases, skipped


def flat(value: Any) -> np.ndarray:
    """A tensor as it is; a sequence of tensors (a list) as its items' values, raveled and joined."""
    if isinstance(value, list | tuple):
        return np.concatenate([np.ravel(v) for v in value]) if value else np.zeros(0, np.float32)
    return np.asarray(value)


def rms(x: Any) -> float:
    """The root mean square of a tensor's (or a sequence's) finite values (0 for an empty or non-numeric one)."""
    x = flat(x)
    if not x.size or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        return 0.0
    values = x.astype(np.float64)
    values = values[np.isfinite(values)]
    with np.errstate(over="ignore"):
        return float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0


def fit_layout(got: np.ndarray, want: np.ndarray, channels_last: bool) -> np.ndarray:
    if channels_last and got.shape != want.shape and got.ndim >= 3 and np.moveaxis(got, -1, 1).shape == want.shape:
        return np.moveaxis(got, -1, 1)
    return got


def rmse(got: np.ndarray, want: np.ndarray) -> float:
    if got.size == 0:
        return 0.0
    a, b = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    return float(np.sqrt(np.mean(np.where(both_nan, 0.0, a - b) ** 2)))


def _shape(value: Any) -> object:
    """A tensor's shape; a sequence's list of its items' shapes."""
    return [np.shape(v) for v in value] if isinstance(value, list | tuple) else np.shape(value)


def floors_of(ort: Answer, expected: Sequence[Any]) -> list[float]:
    """Per output: ONNX Runtime's rmse against the expected output, never below float32's rounding of it."""
    out = []
    for i, want in enumerate(expected):
        floor = FP32_EPS * rms(want)
        got = ort.outputs[i] if ort.outputs is not None and i < len(ort.outputs) else None
        if got is not None and _shape(got) == _shape(want) and np.issubdtype(flat(want).dtype, np.number):
            floor = max(floor, rmse(flat(got), flat(want)))
        out.append(floor)
    return out


def _aligned(got: Any, want: Any, i: int, tool: Tool) -> tuple[np.ndarray, np.ndarray] | str:
    """Output `i` and what it should be as two arrays of one shape, or why they cannot be (a mismatch)."""
    if isinstance(want, list | tuple) != isinstance(got, list | tuple):
        kind = ("a sequence of tensors", "a tensor") if isinstance(want, list | tuple) else ("a tensor", "a sequence")
        return f"output {i}: {kind[1]} where {kind[0]} was expected"
    if isinstance(want, list | tuple):
        if _shape(got) != _shape(want):
            return f"output {i}: a sequence of shapes {_shape(got)}, expected {_shape(want)}"
        return flat(got), flat(want)
    got = fit_layout(np.asarray(got), want, tool.channels_last)
    if got.shape != want.shape:
        return f"output {i}: shape {got.shape}, expected {want.shape}"
    return got, np.asarray(want)


def judge(answer: Answer, expected: Sequence[Any], floors: Sequence[float], tool: Tool
          ) -> tuple[str, str, dict[str, float]]:
    """("pass" | "error" | "mismatch" | "timeout", what happened, figures) for one route's answer on one case; a
    "timeout" (the route's own time limit, `ROUTE_TIMEOUT`) is not judged and makes no cause."""
    if answer.outputs is None:
        return ("timeout" if answer.error.startswith(ROUTE_TIMEOUT) else "error"), answer.error, {}
    if len(answer.outputs) < len(expected):
        return "mismatch", f"{len(answer.outputs)} outputs, expected {len(expected)}", {}
    for i, (expect, floor) in enumerate(zip(expected, floors, strict=True)):
        aligned = _aligned(answer.outputs[i], expect, i, tool)
        if isinstance(aligned, str):
            return "mismatch", aligned, {}
        got, want = aligned
        numeric = np.issubdtype(got.dtype, np.number) and np.issubdtype(want.dtype, np.number)
        error = rmse(got, want) if numeric else float(np.any(got != want))
        if not error <= K_NOISE * floor:
            if not numeric:
                return "mismatch", f"output {i}: {got.dtype} values differ from the expected {want.dtype} ones", {}
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            figures = {"rmse": error, "max_abs": float(np.nanmax(diff, initial=0.0)),
                       "rel_l2": error / max(rms(want), 1e-30), "tolerance": K_NOISE * floor}
            return "mismatch", (f"output {i}: rmse {error:.3g} over the noise tolerance {K_NOISE * floor:.3g} "
                                f"(max |diff| {figures['max_abs']:.3g})"), figures
    return "pass", "", {}


def run_route(server: Route, cases: Sequence[BackendCase], floors: dict[str, list[float]] | None,
              say: Callable[[str], None] = lambda _m: None) -> tuple[list[Verdict], dict[str, Answer]]:
    """Every case through one route; `floors` None means this is ONNX Runtime, whose answers set them."""
    verdicts, answers = [], {}
    for case in cases:
        answer = server.call(case.model_path, case.inputs)
        answers[case.name] = answer
        case_floors = floors_of(answer, case.outputs) if floors is None else floors[case.name]
        status, detail, figures = judge(answer, case.outputs, case_floors, server.tool)
        verdicts.append(Verdict(server.tool.name, case.name, status, detail, figures))
    passed = sum(v.status == "pass" for v in verdicts)
    say(f"  {server.tool.name}: {passed}/{len(verdicts)} cases pass")
    return verdicts, answers


_FREE = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+(?:\.\d+)?\b|/\S+|\b0x[0-9a-f]+\b")


def error_key(error: str) -> str:
    """The error's first line with numbers and paths replaced, and the numbers inside quoted names: the same error in
    another case."""
    line = next((s.strip() for s in error.splitlines() if s.strip()), "")[:200]
    return _FREE.sub(lambda m: re.sub(r"\d+", "_", m.group(0)) if is_free(m.group(0)) else m.group(0), line)


@dataclass
class Cause:
    tool: str
    kind: str  # "error" | "mismatch"
    key: str  # the error key, or the operator types
    verdicts: list[Verdict] = field(default_factory=list)
    reduced_ops: list[str] = field(default_factory=list)
    folder: str = ""
    note: str = ""
    minimal: str = ""  # "1-minimal, ..." with each kept node's reason, or why not proven (`Reduction.why`)

    @property
    def cases(self) -> list[str]:
        return [v.case for v in self.verdicts]


def group_causes(verdicts: Sequence[Verdict], cases: dict[str, BackendCase]) -> list[Cause]:
    """Failures grouped by tool and error key (errors) or by tool and the case's operators with their modes
    (mismatches, `op_signature`)."""
    groups: dict[tuple[str, str, str], Cause] = {}
    for verdict in verdicts:
        if verdict.status in ("pass", "timeout"):
            continue
        case = cases[verdict.case]
        key = error_key(verdict.detail) if verdict.status == "error" else case.signature or " ".join(case.op_types)
        groups.setdefault((verdict.route, verdict.status, key), Cause(verdict.route, verdict.status, key)
                          ).verdicts.append(verdict)
    return list(groups.values())
