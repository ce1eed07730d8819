"""A reproducer folder a maintainer can run without dlcompat: the smallest model, its inputs and expected outputs in
ONNX's backend-test layout, a `repro.py` that exits 1 while the problem is present (0 once it is not; 2 when it
cannot tell: another error, a missing package), exact pins, and the issue text.

    repro.py                      <= 40 lines; imports the tool, ONNX (to read the model and tensors) and NumPy
    model.onnx
    test_data_set_0/input_0.pb    inputs and expected outputs, as ONNX TensorProtos (onnx/backend/test/data layout)
    test_data_set_0/output_0.pb      (a sequence-typed value as an onnx.SequenceProto, as ONNX's own test data has it)
    requirements.txt              exact pins: the versions of the environment the failure was seen in
    .python-version               where that environment's Python is not 3.11
    ISSUE.md                      title, versions, expected, what happened, the difference or error, the command
    finding.json                  the same, for `dlcompat findings verify` (which writes `verified.json` beside it)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .tools import Tool

#: the most lines a repro.py may have (issue 19)
MAX_REPRO_LINES = 40
DEFAULT_PYTHON = "3.11"

_HEAD = '''\
"""{title}. Exits 1 while the problem is present, 0 when it is not, 2 when it cannot tell."""
import re, sys
from pathlib import Path
import numpy as np
import onnx
'''

_TAIL = '''HERE = Path(__file__).resolve().parent
PATTERN = {pattern!r}  # the error, when the problem is an error
TOLERANCE = {tolerance!r}  # per output: the largest rmse that is noise (see ISSUE.md)
{load}data = {{p.stem: {read} for p in (HERE / "test_data_set_0").glob("*.pb")}}
inputs, expected = ([data[f"{{k}}_{{i}}"] for i in range(sum(k in n for n in data))] for k in ("input", "output"))
try:
    outputs = run(HERE / "model.onnx", inputs)
except (Exception, SystemExit) as exc:  # the tool failed: is it this problem?
    error = f"{{type(exc).__name__}}: {{exc}}"
    sys.exit(print(error[:2000]) or (1 if PATTERN and re.search(PATTERN, error) else 2))
if PATTERN: sys.exit(print("no error: the problem is gone") or 0)
for i, (got, want) in enumerate(zip(outputs, expected)):
    got = np.asarray(got){layout}
    if got.shape != want.shape: sys.exit(print(f"output {{i}}: shape {{got.shape}}, expected {{want.shape}}") or 1)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    rmse = float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0
    print(f"output {{i}}: rmse {{rmse:.3g}} (noise <= {{TOLERANCE[i]:.3g}}), max |diff| {{diff.max(initial=0):.3g}}")
    if not rmse <= TOLERANCE[i]: sys.exit(1)
'''
#: where a reproducer's data holds sequences: the files that hold an onnx.SequenceProto are named, and read as lists
_LOAD_SEQUENCES = '''SEQUENCES = {sequences!r}  # files that hold a list of tensors (onnx.SequenceProto)
load = lambda p: (onnx.numpy_helper.to_list(onnx.SequenceProto.FromString(p.read_bytes())) if p.stem in SEQUENCES
                  else onnx.numpy_helper.to_array(onnx.load_tensor(str(p))))
'''

_LAYOUT = ("\n    if got.shape != want.shape and np.moveaxis(got, -1, 1).shape == want.shape:  # channels last"
           "\n        got = np.moveaxis(got, -1, 1)")


@dataclass
class Problem:
    """One cause, ready to be written as a reproducer folder."""

    key: str  # a short identifier, unique per cause (the folder's name)
    tool: str
    kind: str  # "error" | "numeric"
    title: str
    happened: str  # the error text, or the difference
    expected: str
    pattern: str = ""  # error: the regex the tool's error must match
    tolerance: list[float] = field(default_factory=list)  # numeric: per output, the largest rmse that is noise
    tolerance_note: str = ""  # where the tolerance comes from
    versions: dict[str, str] = field(default_factory=dict)  # package -> version: the pins
    python: str = DEFAULT_PYTHON
    source: str = ""  # where the case came from (a backend test, a study cell)
    cells: list[str] = field(default_factory=list)  # every case or cell with this cause
    op_types: list[str] = field(default_factory=list)  # the reduced model's nodes
    reduction: list[str] = field(default_factory=list)  # how it was reduced
    minimal: bool = False
    minimal_note: str = ""  # why it is 1-minimal (each kept node's reason) or why that is not proven
    upstream: str = ""  # a known upstream issue
    figures: dict[str, float] = field(default_factory=dict)  # max_abs, rel_l2, rmse, where numeric

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@functools.cache
def onnx_op_names() -> frozenset[str]:
    """Every ONNX operator type (all domains, all versions): a quoted op type in an error is the cause, not a name."""
    from onnx import defs

    return frozenset(schema.name for schema in defs.get_all_schemas_with_history())


def is_free(part: str) -> bool:
    """Whether an error's `part` (a quoted name, a number, a path) may differ from case to case: all but op types."""
    return part.strip("'\"") not in onnx_op_names()


def _free_part(part: str) -> str:
    """A quoted name keeps its words, its numbers made free, a counter's underscore too (`"tf.math.add_3"`: any
    `tf.math.add_N`, and `tf.math.add`, the name a fresh process gives the first such layer); an op type stays as it
    is; a number or a path is free."""
    if not is_free(part):
        return re.escape(part)
    if part[:1] in "'\"":
        return ".*?".join(re.escape(piece) for piece in re.split(r"_?\d+", part))
    return ".*?"


def error_pattern(error: str, limit: int = 160) -> str:
    """A regex for an error's first line: its literal words and quoted op types kept; numbers, paths and the numbers
    inside other quoted names left free."""
    line = next((s.strip() for s in error.splitlines() if s.strip()), "")[:limit]
    parts = re.split(r"('[^']*'|\"[^\"]*\"|\b\d+(?:\.\d+)?\b|/\S+)", line)
    regex = "".join(_free_part(part) if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.sub(r"(?:\.\*\?)+$", "", re.sub(r"(?:\.\*\?)+", ".*?", regex)) or "."


def repro_source(problem: Problem, tool: Tool, sequences: Sequence[str] = ()) -> str:
    """`repro.py`: the tool's `run`, then the check; `sequences`: the data files (stems) that hold a sequence of
    tensors. Raises if it would be longer than `MAX_REPRO_LINES`."""
    load = _LOAD_SEQUENCES.format(sequences=list(sequences)) if sequences else ""
    read = "load(p)" if sequences else "onnx.numpy_helper.to_array(onnx.load_tensor(str(p)))"
    tail = _TAIL.format(pattern=problem.pattern, tolerance=[float(f"{t:.6g}") for t in problem.tolerance],
                        layout=_LAYOUT if tool.channels_last else "", load=load, read=read)
    text = _HEAD.format(title=problem.title.replace('"', "'")) + tool.source + tail
    lines = text.count("\n")
    if lines > MAX_REPRO_LINES:
        raise ValueError(f"repro.py for {tool.name} has {lines} lines, over {MAX_REPRO_LINES}")
    return text


def requirements(problem: Problem, tool: Tool) -> str:
    pins = [f"{name}=={problem.versions[name]}" for name in tool.packages if problem.versions.get(name)]
    return "\n".join((*tool.index_lines, *pins)) + "\n"


def issue_text(problem: Problem, folder: Path) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in problem.versions.items())
    figures = "; ".join(f"{k} {v:.4g}" for k, v in problem.figures.items())
    lines = [f"# {problem.title}", "", f"**Versions**: Python {problem.python}, {versions}", "",
             f"**Model**: `model.onnx`, {len(problem.op_types)} node(s): {', '.join(problem.op_types)}"
             f" ({problem.minimal_note or ('1-minimal' if problem.minimal else 'not proven minimal')});"
             f" inputs and expected outputs in `test_data_set_0/` (ONNX backend-test layout).", "",
             f"**Expected**: {problem.expected}", "", f"**What happened**: {problem.happened}", ""]
    if figures:
        lines += [f"**Difference**: {figures}. {problem.tolerance_note}", ""]
    if problem.pattern:
        lines += [f"**Error pattern checked**: `{problem.pattern}`", ""]
    if (folder / "repro.py").exists():
        lines += ["**Reproduce**:", "", "```sh", f"cd {folder.name}", "python -m venv venv && . venv/bin/activate",
                  "pip install -r requirements.txt", "python repro.py   # exit 1: present, 0: fixed, 2: cannot tell",
                  "```", "", f"Found by dlcompat on {problem.source}."]
    else:  # a browser route: no standalone Python script drives it
        lines += ["**Reproduce**: load `model.onnx` with this runtime (wasm execution provider, one thread, "
                  "graphOptimizationLevel 'all') in the browser named above, feed `test_data_set_0/input_*.pb` and "
                  "compare with `output_*.pb`; `dlcompat conformance --routes onnxruntime-web` does this. There is no "
                  "repro.py: `dlcompat findings verify` does not run this folder.", "",
                  f"Found by dlcompat on {problem.source}."]
    if problem.cells:
        lines += ["", "Cases with the same cause: " + ", ".join(problem.cells) + "."]
    if problem.upstream:
        lines += ["", f"Upstream: {problem.upstream}"]
    if problem.reduction:
        lines += ["", "Reduction: " + "; ".join(problem.reduction) + "."]
    return "\n".join(lines) + "\n"


def write_reproducer(folder: Path, problem: Problem, tool: Tool, model: Any,
                     inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Path:
    """Write the reproducer folder for `problem` (its reduced `model`, fed `inputs`, expected `outputs`)."""
    import onnx
    from onnx import numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    data = folder / "test_data_set_0"
    data.mkdir(exist_ok=True)
    sequences = []
    for stem, values in (("input", inputs), ("output", outputs)):
        for i, value in enumerate(values):
            name = f"{stem}_{i}"
            if isinstance(value, list):  # a sequence of tensors (an empty one: the model declares its element type)
                proto = numpy_helper.from_list([np.asarray(v) for v in value], name)
                sequences.append(name)
            else:
                proto = numpy_helper.from_array(np.asarray(value))
            (data / f"{name}.pb").write_bytes(proto.SerializeToString())
    if tool.source:  # a tool Python drives (a browser route has none: ISSUE.md says how to reproduce it)
        (folder / "repro.py").write_text(repro_source(problem, tool, sequences))
        (folder / "requirements.txt").write_text(requirements(problem, tool))
        if problem.python != DEFAULT_PYTHON:
            (folder / ".python-version").write_text(problem.python + "\n")
    (folder / "ISSUE.md").write_text(issue_text(problem, folder))
    (folder / "finding.json").write_text(json.dumps(problem.to_dict(), indent=2) + "\n")
    return folder


def read_problem(folder: Path) -> Problem:
    return Problem.from_dict(json.loads((folder / "finding.json").read_text()))
