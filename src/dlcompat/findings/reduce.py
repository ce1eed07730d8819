"""The smallest ONNX subgraph that still fails the same way (Polygraphy's `debug reduce` method).

Every tensor of the original model is computed once (the *golden* values: ONNX Runtime with every node output
marked as a graph output; ONNX's reference evaluator where ONNX Runtime itself cannot run the model). A
candidate is a set of the model's nodes: `extract` cuts it out as a model of its own whose inputs are the tensors
it consumes but does not produce (fed with their golden values) and whose outputs are the tensors it produces but
does not consume (their golden values are what it should give). The caller's `fails` says whether a candidate
still fails the same way (an error matching the same pattern, or an output beyond the noise floor).

The search, as Polygraphy's: *bisect* first (the shortest prefix of the nodes, in topological order, that still
fails, then the shortest suffix of that), then *linear* passes that try removing each remaining node, one at a
time, until a whole pass removes none. That last pass is the proof that the result is 1-minimal: no single node
can be removed without losing the failure (`Reduction.minimal`, False only where the check budget ran out).

Removing a node makes its outputs inputs of the candidate, fed their golden values; a sequence-typed value (ONNX
Runtime hands one back as a list of arrays) becomes a sequence-typed graph input or output, which ONNX allows (its
element type from the value itself or, for an empty sequence, from shape inference). Where a removal cannot even be
expressed as a model (no golden value, an empty sequence of unknown element type) or the check cannot judge it
(`CannotJudge`), the node stays with that reason: `Reduction.removals` says for each kept node why it stays, so the
claim "1-minimal" is exact (`Reduction.why`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: at most this many candidates are checked (each one runs the failing tool once)
MAX_CHECKS = 400


@dataclass
class Case:
    """A model, what to feed it, and what it should give (golden values, from the original model)."""

    model: Any  # onnx.ModelProto
    inputs: dict[str, Any]  # name -> an array, or a list of arrays for a sequence-typed value
    outputs: dict[str, Any]

    @property
    def op_types(self) -> list[str]:
        return [node.op_type for node in self.model.graph.node]


@dataclass
class Reduction:
    """The reduced case, the original nodes it keeps (indices), and how the search went; `removals`: for each kept
    node, why it cannot be removed ("loses the failure", or "cannot remove: ...")."""

    case: Case
    nodes: list[int]
    original_nodes: int
    checks: int = 0
    minimal: bool = False
    steps: list[str] = field(default_factory=list)
    removals: dict[int, str] = field(default_factory=dict)

    @property
    def why(self) -> str:
        """"1-minimal: ..." with each kept node's reason, or why it is not proven minimal."""
        if not self.minimal:
            return "not proven minimal: the check budget ran out"
        ops = [node.op_type for node in self.case.model.graph.node]  # in the order of sorted(nodes)
        reasons = "; ".join(f"{op}: {self.removals.get(n, '?')}" for op, n in zip(ops, sorted(self.nodes), strict=True))
        return f"1-minimal, no single node can be removed ({reasons})"


class CannotJudge(ValueError):
    """Raised by `extract` or a check: this candidate cannot be expressed or judged (the reason is the message)."""


Check = Callable[[Case], bool]


def _marked(model: Any) -> Any:
    """A copy of `model` with every node output a graph output (types from shape inference where it knows)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference rejects: outputs without types
        inferred = model
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output)}
    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    present = {o.name for o in marked.graph.output}
    for node in marked.graph.node:
        for name in node.output:
            if name and name not in present:
                marked.graph.output.append(known.get(name) or onnx.ValueInfoProto(name=name))
                present.add(name)
    return marked


def golden_values(model: Any, feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Every tensor of `model` on `feeds`: inputs, initializers and each node's outputs (a sequence-typed value as a
    list of arrays)."""
    from onnx import numpy_helper

    values: dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    values.update({k: _value(v) for k, v in feeds.items()})
    marked = _marked(model)
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(marked.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values.update(zip(names, map(_value, session.run(names, dict(feeds))), strict=True))
    except Exception:  # ONNX Runtime cannot run it (the failing tool may be ONNX Runtime itself)
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        results = evaluator.run(None, dict(feeds), intermediate=True)
        values.update({k: _value(v) for k, v in results.items() if v is not None})
    return values


def _value(value: Any) -> Any:
    """An array, or a sequence of tensors as a list of arrays."""
    return [np.asarray(v) for v in value] if isinstance(value, list | tuple) else np.asarray(value)


def sequence_types(model: Any) -> dict[str, int]:
    """The element type of each sequence-typed value of `model` that shape inference knows."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference rejects: no types known
        return {}
    values = (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
    return {v.name: v.type.sequence_type.elem_type.tensor_type.elem_type for v in values
            if v.type.HasField("sequence_type") and v.type.sequence_type.elem_type.HasField("tensor_type")}


def _value_info(name: str, value: Any, sequences: Mapping[str, int]) -> Any:
    """A tensor's value info of the golden value's type and shape; a list is a sequence of tensors."""
    from onnx import helper

    if not isinstance(value, list):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
    if value:
        shapes = {np.shape(v) for v in value}
        elem = helper.np_dtype_to_tensor_dtype(np.asarray(value[0]).dtype)
        return helper.make_tensor_sequence_value_info(name, elem, list(shapes.pop()) if len(shapes) == 1 else None)
    if not sequences.get(name):
        raise CannotJudge(f"cannot remove: {name} is an empty sequence whose element type is unknown")
    return helper.make_tensor_sequence_value_info(name, sequences[name], None)


def _reads(node: Any) -> list[str]:
    """The tensors a node reads: its inputs and, for If/Loop/Scan, what its subgraphs read from outside."""
    names = [n for n in node.input if n]
    for attribute in node.attribute:
        for graph in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
            inner = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
            inner |= {i.name for i in graph.initializer}
            names += [n for sub in graph.node for n in _reads(sub) if n not in inner]
    return list(dict.fromkeys(names))


def extract(model: Any, nodes: Sequence[int], golden: Mapping[str, Any],
            sequences: Mapping[str, int] | None = None) -> Case:
    """The subgraph of `model` made of `nodes` (indices), fed and checked with the golden values; `sequences`: the
    element types of sequence-typed values (`sequence_types`), for empty ones. CannotJudge where it cannot be."""
    from onnx import helper

    sequences = sequence_types(model) if sequences is None else sequences

    chosen = [model.graph.node[i] for i in sorted(nodes)]
    produced = [o for node in chosen for o in node.output if o]
    read = list(dict.fromkeys(n for node in chosen for n in _reads(node)))
    initializers = {i.name: i for i in model.graph.initializer}
    inputs = [n for n in read if n not in produced and n not in initializers]
    graph_outputs = {o.name for o in model.graph.output}
    outputs = [o for o in produced if (o not in read or o in graph_outputs) and o in golden]
    missing = [n for n in (*inputs, *outputs) if n not in golden]
    if missing or not outputs:
        raise CannotJudge(f"cannot remove: no golden value for {', '.join(missing)}" if missing
                          else "cannot remove: the rest would have no output")
    graph = helper.make_graph(
        chosen, f"{model.graph.name or 'graph'}_reduced",
        [_value_info(n, golden[n], sequences) for n in inputs],
        [_value_info(n, golden[n], sequences) for n in outputs],
        [initializers[n] for n in read if n in initializers])
    reduced = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="dlcompat-reduce")
    reduced.ir_version = max(model.ir_version, 4)  # IR 3 wants every initializer listed as an input too
    reduced.functions.extend(model.functions)
    return Case(reduced, {n: golden[n] for n in inputs}, {n: golden[n] for n in outputs})


class _Search:
    """The candidates tried so far, so that no set of nodes is checked twice."""

    def __init__(self, model: Any, golden: Mapping[str, Any], fails: Check, max_checks: int) -> None:
        self.model, self.golden, self.fails, self.max_checks = model, golden, fails, max_checks
        self.sequences = sequence_types(model)
        self.seen: dict[frozenset[int], bool] = {}
        self.why: dict[frozenset[int], str] = {}  # candidates that could not be expressed or judged, and why

    @property
    def checks(self) -> int:
        return len(self.seen)

    def __call__(self, nodes: Sequence[int]) -> bool:
        key = frozenset(nodes)
        if key not in self.seen:
            if not key or self.checks >= self.max_checks:
                return False
            try:
                self.seen[key] = bool(self.fails(extract(self.model, sorted(key), self.golden, self.sequences)))
            except CannotJudge as exc:
                self.seen[key], self.why[key] = False, str(exc)
            except Exception:  # a check that breaks on this candidate: not the same failure
                self.seen[key] = False
        return self.seen[key]

    def removals(self, nodes: Sequence[int]) -> dict[int, str]:
        """Why each of `nodes` stays: the candidate without it no longer fails, or could not be expressed."""
        if len(nodes) == 1:
            return {nodes[0]: "cannot remove: it is the only node"}
        return {n: self.why.get(frozenset(m for m in nodes if m != n), "removing it loses the failure")
                for n in nodes}


def _bisect(order: list[int], still_fails: _Search) -> list[int]:
    """The shortest prefix of `order` that fails, then the shortest suffix of that prefix that fails."""
    lo, hi = 1, len(order)  # the shortest failing prefix length lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if still_fails(order[:mid]):
            hi = mid
        else:
            lo = mid + 1
    prefix = order[:hi]
    lo, hi = 1, len(prefix)  # the shortest failing suffix length
    while lo < hi:
        mid = (lo + hi) // 2
        if still_fails(prefix[-mid:]):
            hi = mid
        else:
            lo = mid + 1
    return prefix[-hi:]


def _linear(nodes: list[int], still_fails: _Search) -> tuple[list[int], bool]:
    """Remove single nodes while the rest still fails, until a whole pass removes none (then it is 1-minimal)."""
    while True:
        removed = False
        for node in list(reversed(nodes)):
            if len(nodes) > 1 and still_fails([n for n in nodes if n != node]):
                nodes = [n for n in nodes if n != node]
                removed = True
        if still_fails.checks >= still_fails.max_checks:
            return nodes, False
        if not removed:
            return nodes, True


def reduce_model(model: Any, feeds: Mapping[str, Any], fails: Check, *,
                 golden: Mapping[str, Any] | None = None, max_checks: int = MAX_CHECKS) -> Reduction:
    """The smallest subgraph of `model` (fed `feeds`) that `fails`; raises ValueError if the model itself does not."""
    values = dict(golden) if golden is not None else golden_values(model, feeds)
    order = list(range(len(model.graph.node)))
    search = _Search(model, values, fails, max_checks)
    if not search(order):
        raise ValueError("the model does not fail the check, so there is nothing to reduce")
    steps = [f"original: {len(order)} nodes"]
    nodes = _bisect(order, search) if len(order) > 1 else order
    steps.append(f"bisect: {len(nodes)} nodes ({search.checks} checks)")
    nodes, minimal = _linear(nodes, search)
    verdict = "1-minimal: no single node can be removed" if minimal else "check budget spent: not proven minimal"
    steps.append(f"linear: {len(nodes)} nodes ({search.checks} checks); {verdict}")
    return Reduction(extract(model, nodes, values, search.sequences), nodes, len(order), search.checks, minimal,
                     steps, search.removals(nodes) if minimal else {})


def one_minimal(model: Any, nodes: Sequence[int], golden: Mapping[str, Any], fails: Check) -> bool:
    """Whether the subgraph of `nodes` fails and no subgraph with one node fewer does (an independent check)."""
    search = _Search(model, golden, fails, max_checks=len(nodes) + 2)
    return search(nodes) and not any(search([n for n in nodes if n != node]) for node in nodes if len(nodes) > 1)
