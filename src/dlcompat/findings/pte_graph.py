"""An ExecuTorch `.pte` program's operator graph, read from the file alone (`runtimes.pte_program`), in the vocabulary
of `findings.graph`: its kernel calls (the portable kernels, ``aten::convolution.out``) and, for each XNNPACK
delegate call, the nodes of the partition's own graph (``XNNConv2d``, ``XNNFullyConnected``, ...), in execution order.

Tensor names are those `ExecuTorchRunner.intermediates` hands back (``v<i>``: the program's value i,
``xnnpack<d>/<id>``: a value inside the d-th XNNPACK partition). Program tensors are NCHW (ExecuTorch's logical
layout, whatever their dim order); XNNPACK computes convolutions and pools in NHWC, and its static transposes
permute a layout. A partition's fused output clamp [0, inf) is a fused ReLU (LiteRT's fused activations, read the
same way). A quantised XNNPACK tensor carries its per-tensor scale and zero point (read as its exact float32); the
runner hands it back dequantised by XNNPACK itself. Convolution and pool attributes take ONNX's names (``pads`` as
top, left, bottom, right; ``strides``; ``kernel_shape``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcompat.findings.graph import Graph, GraphNode, layout_after, refine
from dlcompat.runtimes.pte_program import (
    PteProgram,
    XnnPartition,
    as_float,
    is_constant,
    read_program,
)

#: portable kernels (ATen operator names) -> kinds
_ATEN_KINDS = {
    "convolution": "conv", "relu": "relu", "max_pool2d_with_indices": "maxpool", "max_pool2d": "maxpool",
    "avg_pool2d": "avgpool", "addmm": "dense", "linear": "dense", "mm": "dense", "view_copy": "flatten",
    "et_view": "flatten", "_unsafe_view": "flatten", "permute_copy": "neutral", "clone": "neutral",
    "_to_copy": "neutral", "add": "add", "_native_batch_norm_legit_no_training": "bn", "mean": "gap",
    "tanh": "tanh", "sigmoid": "sigmoid", "mul": "scale", "div": "scale", "sub": "scale",
    "quantize_per_tensor": "neutral", "dequantize_per_tensor": "neutral", "dequantize_per_channel": "neutral",
}
_XNN_KINDS = {
    "XNNConv2d": "conv", "XNNFullyConnected": "dense", "XNNMaxPooling2d": "maxpool", "XNNAvgPooling2d": "avgpool",
    "XNNGlobalAvgPooling2d": "gap", "XNNStaticTranspose": "neutral", "XNNConvert": "neutral", "XNNCopy": "neutral",
    "XNNStaticReshape": "flatten", "XNNAdd": "add", "XNNTanh": "tanh", "XNNSigmoid": "sigmoid",
    "XNNMultiply": "scale", "XNNSubtract": "scale", "XNNDiv": "scale",
}
#: the operand fields of an XNNPACK node, data first
_XNN_OPERANDS = ("input_id", "input1_id", "input2_id", "filter_id", "bias_id")
_INF = float("inf")


def read_pte(path: Path) -> Graph:
    """The `.pte` file's `forward` method as a graph (see the module's docstring)."""
    from executorch.exir.schema import DelegateCall, KernelCall

    program = read_program(Path(path))
    plan = program.plan
    source = f"v{plan.inputs[0]}"
    layouts: dict[str, str] = {source: "NCHW"}
    nodes: list[GraphNode] = []
    static = _program_constants(plan)
    for call in program.instructions():
        if isinstance(call, DelegateCall):
            partition = program.partitions[call.delegate_index]
            if partition is None:
                nodes.append(_opaque(program, call))
            else:
                nodes += _partition_nodes(partition, layouts)
        elif isinstance(call, KernelCall):
            node = _kernel_node(program, call, static)
            if node is not None:
                nodes.append(node)
    for node in nodes:  # program tensors are NCHW; an XNNPACK node's layout was set from its operands
        if node.output.startswith("v"):
            node.layout = "NCHW" if node.shape is not None and len(node.shape) == 3 else ""
    _grid(nodes)
    refine(nodes, {f"v{i}" for i in plan.outputs})
    return Graph("pte", source, "NCHW", nodes, _precision(program))


def _grid(nodes: list[GraphNode]) -> None:
    """A float tensor that only dequantises or reshapes a quantised one (an XNNPACK Convert to float32, a view of
    it) holds that tensor's grid values: it carries its quantisation, to be judged in its quantisation steps."""
    by_output = {node.output: node for node in nodes}
    for node in nodes:
        source = by_output.get(node.inputs[0]) if len(node.inputs) == 1 else None
        if node.quantisation is None and node.kind in ("neutral", "flatten") and source is not None:
            node.quantisation = source.quantisation


def _program_constants(plan: Any) -> set[str]:
    """Program values that are not computed tensors: weights, scalars, lists (names ``v<i>``); what a kernel computes
    from them only is added as the graph is read."""
    from executorch.exir.schema import Tensor

    return {f"v{i}" for i, value in enumerate(plan.values)
            if not isinstance(value.val, Tensor) or is_constant(value.val)}


def _shape(sizes: list[int]) -> tuple[int, ...] | None:
    return tuple(int(d) for d in sizes[1:]) if len(sizes) >= 2 and all(int(d) > 0 for d in sizes[1:]) else None


def _ints(plan: Any, index: int) -> list[int]:
    """An int list argument of a kernel call (ExecuTorch stores its items as indices of Int values)."""
    value = plan.values[index].val
    items = getattr(value, "items", None)
    if items is None:
        return [int(value.int_val)] if hasattr(value, "int_val") else []
    return [int(plan.values[i].val.int_val) for i in items]


def _out_args(program: PteProgram, call: Any) -> tuple[list[int], list[int]]:
    """(the argument values a kernel reads, those it writes), by the operator's schema (`out` arguments); an
    operator without a known schema writes its last argument."""
    name = program.plan.operators[call.op_index]
    namespace, _, op = name.name.partition("::")
    try:
        import torch

        schema = getattr(getattr(getattr(torch.ops, namespace), op), name.overload or "default")._schema
        writes = [i for i, a in enumerate(schema.arguments) if a.alias_info is not None and a.alias_info.is_write]
    except (AttributeError, RuntimeError):
        writes = []
    args = list(call.args)
    if not writes:
        return args[:-1], args[-1:]
    return [a for i, a in enumerate(args[: len(schema.arguments)]) if i not in writes], [args[i] for i in writes]


def _kernel_node(program: PteProgram, call: Any, static: set[str]) -> GraphNode | None:
    plan = program.plan
    op = program.operator(call.op_index)
    reads, writes = _out_args(program, call)
    if not writes:
        return None
    short = op.split("::")[-1].split(".")[0]
    kind = _ATEN_KINDS.get(short, "plumbing")
    data = [f"v{i}" for i in reads if f"v{i}" not in static]
    output = f"v{writes[0]}"
    tensor = plan.values[writes[0]].val
    shape = _shape(list(getattr(tensor, "sizes", [])))
    attributes: dict[str, Any] = {}
    kernel = None
    if kind == "conv":
        weight = plan.values[reads[1]].val
        kernel = int(weight.sizes[-1])
        pad = _ints(plan, reads[4])
        attributes = {"strides": _ints(plan, reads[3]), "pads": [pad[0], pad[-1], pad[0], pad[-1]]}
    elif kind in ("maxpool", "avgpool"):
        pad = _ints(plan, reads[3]) or [0, 0]
        stride = _ints(plan, reads[2]) or _ints(plan, reads[1])
        attributes = {"kernel_shape": _ints(plan, reads[1]), "strides": stride,
                      "pads": [pad[0], pad[-1], pad[0], pad[-1]]}
    if kind == "scale" and len(data) != 1:
        kind = "plumbing"
    if not data:
        static.add(output)  # computed from constants only (a weight's transpose): a constant of its readers
        kind = "plumbing"
    return GraphNode(op=op, kind=kind, inputs=data, output=output, shape=shape, kernel=kernel,
                     constants=[f"v{i}" for i in reads if f"v{i}" in static and _is_tensor(plan, i)],
                     operands=[f"v{i}" for i in reads], attributes=attributes)


def _is_tensor(plan: Any, index: int) -> bool:
    from executorch.exir.schema import Tensor

    return isinstance(plan.values[index].val, Tensor)


def _opaque(program: PteProgram, call: Any) -> GraphNode:
    """A delegate of another backend: one operator whose inside is not read."""
    backend = program.plan.delegates[call.delegate_index].id
    return GraphNode(op=f"delegate {backend}", kind="plumbing", inputs=[f"v{i}" for i in call.args[:-1]],
                     output=f"v{call.args[-1]}", shape=None)


def _partition_nodes(partition: XnnPartition, layouts: dict[str, str]) -> list[GraphNode]:
    graph, values = partition.graph, partition.values()
    names = {vid: f"v{arg}" for vid, arg in zip(graph.get("input_ids", []), partition.inputs, strict=False)}
    names |= {vid: f"v{arg}" for vid, arg in zip(graph.get("output_ids", []), partition.outputs, strict=False)}

    def name(vid: int) -> str:
        return names.get(vid, f"xnnpack{partition.index}/{vid}")

    nodes = []
    for node in graph.get("xnodes", []):
        kind_name, fields = node["xnode_union_type"], node["xnode_union"]
        if "output_id" not in fields:
            continue
        operands = [int(fields[k]) for k in _XNN_OPERANDS if k in fields]
        constant = {vid for vid in operands if int(values.get(vid, {}).get("constant_buffer_idx", 0)) != 0}
        data = [name(v) for v in operands if v not in constant]
        out = int(fields["output_id"])
        tensor = values.get(out, {})
        kind = _xnn_kind(kind_name, fields, len(data))
        before = layouts.get(data[0], "") if data else ""
        layout = _xnn_layout(kind_name, fields, before)
        shape = _shape(list(tensor.get("dims", [])))
        if shape is None or len(shape) != 3:
            layout = ""
        layouts[name(out)] = layout
        nodes.append(GraphNode(
            op=kind_name, kind=kind, inputs=data, output=name(out), shape=shape, layout=layout,
            fused=_fused(node.get("output_min_max")) if kind in ("conv", "dense", "maxpool", "avgpool", "add")
            else None,
            kernel=int(fields["kernel_height"]) if kind == "conv" else None,
            constants=[name(v) for v in operands if v in constant], operands=[name(v) for v in operands],
            attributes=_xnn_attributes(kind, fields), quantisation=_quantisation(tensor)))
    return nodes


def _xnn_kind(kind_name: str, fields: dict[str, Any], data: int) -> str:
    if kind_name == "XNNDepthwiseConv2d":  # one input channel: each output channel is a full convolution of it
        return "conv" if int(fields.get("group_input_channels", 0)) == 1 and int(fields.get("groups", 0)) == 1 \
            else "plumbing"
    if kind_name == "XNNClamp":
        return _fused({"output_min": fields.get("output_min", 0), "output_max": fields.get("output_max", 0)}) \
            or "plumbing"
    kind = _XNN_KINDS.get(kind_name, "plumbing")
    return "plumbing" if kind == "scale" and data != 1 else kind


def _xnn_layout(kind_name: str, fields: dict[str, Any], before: str) -> str:
    if kind_name in ("XNNConv2d", "XNNDepthwiseConv2d", "XNNMaxPooling2d", "XNNAvgPooling2d"):
        return "NHWC"
    if kind_name == "XNNStaticTranspose":
        return layout_after(before, [int(p) for p in fields.get("perm", [])]) if before else ""
    return before


def _fused(bounds: dict[str, Any] | None) -> str | None:
    """An output clamp as the activation it is: [0, inf) a ReLU, [0, 6] a ReLU6; none or (-inf, inf) none."""
    if not bounds:
        return None
    low, high = as_float(bounds.get("output_min", 0)), as_float(bounds.get("output_max", 0))
    if low == 0.0 and high == _INF:
        return "relu"
    if low == 0.0 and high == 6.0:
        return "relu6"
    return None if (low, high) == (-_INF, _INF) else f"clamp [{low:g}, {high:g}]"


def _xnn_attributes(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    pads = [int(fields.get(f"padding_{side}", 0)) for side in ("top", "left", "bottom", "right")]
    if kind == "conv":
        return {"strides": [int(fields["subsampling_height"]), int(fields["subsampling_width"])], "pads": pads}
    if kind in ("maxpool", "avgpool"):
        return {"kernel_shape": [int(fields["pooling_height"]), int(fields["pooling_width"])],
                "strides": [int(fields["stride_height"]), int(fields["stride_width"])], "pads": pads}
    return {}


def _quantisation(tensor: dict[str, Any]) -> dict[str, Any] | None:
    quant = tensor.get("quant")
    if not quant or quant.get("type") != "PerTensorQuant":
        return None
    return {"scale": [as_float(quant["scale"])], "zero_point": [int(quant.get("zero_point", 0))]}


def _precision(program: PteProgram) -> str:
    """int8 where a partition computes on int8 tensors (or the program on int8 tensors), float16 where one stores
    float16 numbers, else float32."""
    from executorch.exir.schema import Tensor

    types = {t.get("datatype", "") for p in program.partitions if p is not None for t in p.values().values()
             if int(t.get("constant_buffer_idx", 0)) == 0}
    planned = {int(v.val.scalar_type) for v in program.plan.values
               if isinstance(v.val, Tensor) and v.val.allocation_info is not None}
    if {"xnn_datatype_qint8", "xnn_datatype_quint8"} & types or {0, 1} & planned:
        return "int8"
    stored = {t.get("datatype", "") for p in program.partitions if p is not None for t in p.values().values()}
    return "float16" if "xnn_datatype_fp16" in stored | types or 5 in planned else "float32"

