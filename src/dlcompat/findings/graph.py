"""An artifact's operator graph, read from the file alone (never by running it): one `GraphNode` per operator.

Each node has a *kind* from a small vocabulary the alignment matches the spec against (``conv``, ``dense``,
``relu``, ``tanh``, ``sigmoid``, ``maxpool``, ``avgpool``, ``gap``, ``flatten``, ``add``, ``bn``, ``dropout``),
``neutral`` for operators that carry a tensor on unchanged in value (transpose, identity, cast, pad,
(de)quantisation), ``scale`` for an elementwise Mul / Div / Sub of one data tensor by a constant (it changes values
but no layer of the spec is one: input normalisation, or an operator a converter should not have put there),
``plumbing`` for the rest (shape arithmetic, constants). Layout is a property of the operator,
not a guess: an ONNX Conv / pool computes NCHW by the operator's definition, a LiteRT one NHWC; a Transpose
permutes the layout of its input (`layout_after`).

A reshape that keeps more than one per-image axis is neutral (not a flatten). ONNX is read with `onnx` (shapes by
`onnx.shape_inference`), LiteRT from the flatbuffer with `ai_edge_litert.schema_py_generated` (operator options
hold the fused activation, strides and padding; tensors their quantisation).

ExecuTorch programs are read to the same vocabulary by `findings.pte_graph`, TensorFlow graphs (TF.js graph models,
onnx2tf's SavedModel) by `findings.tfjs_graph`.

`Graph.precision` is how the artifact stores its numbers (TF.js adds ``uint8`` / ``uint16``: weights on an affine
grid, computed in float32): ``int8`` where any computed tensor is an integer one
(full-integer quantisation), else ``int8-dynamic`` where a convolution / dense operator reads an int8 weight and
computes in float (LiteRT's dynamic-range quantisation: the kernel quantises its input on the fly), else ``float16``
where any weight is stored as float16, else ``float32``.

LiteRT graphs of other converters are read to the same vocabulary: a ``DEPTHWISE_CONV_2D`` of a one-channel input
is a convolution (jax2tf and litert-torch emit a 1-input-channel conv that way); a tensor computed from constants and
shapes only (jax2tf's ``BROADCAST_TO`` of a bias, a ``DEQUANTIZE`` of a float16 weight) counts as a constant of the
operators that read it; a ``MAXIMUM`` with a constant zero is a ReLU; a ``RESHAPE`` that keeps its input's
per-image shape (or reshapes a feature vector) is neutral, and one whose output only feeds ``SHAPE`` is plumbing
(jax2tf's shape computations; the same rules read ONNX's ``Shape``, ``Max`` and ``Reshape``, as tf2onnx emits them
from a jax2tf LiteRT file);
a ``TRANSPOSE`` permutes its input's layout by its constant ``perm`` (litert-torch's NHWC -> NCHW before a
flatten).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_ONNX_KINDS = {
    "Conv": "conv", "Gemm": "dense", "MatMul": "dense", "Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "gap", "ReduceMean": "gap",
    "Flatten": "flatten", "Reshape": "flatten", "Add": "add", "BatchNormalization": "bn", "Dropout": "dropout",
    "Transpose": "neutral", "Identity": "neutral", "Cast": "neutral", "Pad": "neutral",
    "QuantizeLinear": "neutral", "DequantizeLinear": "neutral", "Mul": "scale", "Div": "scale", "Sub": "scale",
}
_TFLITE_KINDS = {
    "CONV_2D": "conv", "FULLY_CONNECTED": "dense", "RELU": "relu", "TANH": "tanh", "LOGISTIC": "sigmoid",
    "MAX_POOL_2D": "maxpool", "AVERAGE_POOL_2D": "avgpool", "MEAN": "gap", "RESHAPE": "flatten", "ADD": "add",
    "TRANSPOSE": "neutral", "QUANTIZE": "neutral", "DEQUANTIZE": "neutral", "PAD": "neutral",
    "MUL": "scale", "DIV": "scale", "SUB": "scale",
}
#: ONNX TensorProto / LiteRT TensorType codes of float16, LiteRT's of 8-bit integers (uint8, int8)
_ONNX_FLOAT16, _TFLITE_FLOAT16, _TFLITE_INT8 = 10, 1, (3, 9)
#: LiteRT's ActivationFunctionType -> the spec's activation (None: no fused activation)
_TFLITE_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}


@dataclass
class GraphNode:
    """One operator: its kind, its data inputs and output, its output's per-image shape and layout."""

    op: str  # the artifact's operator name (Conv, CONV_2D, ...)
    kind: str
    inputs: list[str]
    output: str
    shape: tuple[int, ...] | None  # per image (batch dropped); None where the file does not say
    layout: str = ""  # NCHW / NHWC for 4-D outputs, "" otherwise
    fused: str | None = None  # a fused activation (LiteRT's operator options)
    kernel: int | None = None  # a convolution's kernel size (square kernels), from its weight tensor
    constants: list[str] = field(default_factory=list)  # inputs that are weights / constants
    operands: list[str] = field(default_factory=list)  # every input, in the operator's order
    attributes: dict[str, Any] = field(default_factory=dict)
    quantisation: dict[str, Any] | None = None  # {"scale": [...], "zero_point": [...]} of the output
    weight_quantisation: dict[str, Any] | None = None  # an integer-stored weight's {"scale", "axis"} (LiteRT)


@dataclass
class Graph:
    format: str  # "onnx" | "tflite" | "pte" | "tfjs" | "savedmodel"
    input: str
    input_layout: str
    nodes: list[GraphNode]
    precision: str = "float32"  # int8 | int8-dynamic | float16 | float32 (see the module's docstring)

    def consumers(self, tensor: str) -> list[GraphNode]:
        return [node for node in self.nodes if tensor in node.inputs]

    def producer(self, tensor: str) -> GraphNode | None:
        return next((node for node in self.nodes if node.output == tensor), None)


def layout_after(layout: str, perm: list[int]) -> str:
    """The layout of a transposed 4-D tensor (`perm` as ONNX / LiteRT give it)."""
    return "".join(layout[i] for i in perm) if len(layout) == len(perm) else ""


def _per_image(dims: list[Any]) -> tuple[int, ...] | None:
    if not dims or any(not isinstance(d, int) or d < 0 for d in dims[1:]):
        return None
    return tuple(int(d) for d in dims[1:])


def read_onnx(path: Path, spec_input: tuple[int, int, int]) -> Graph:
    """The ONNX file's main graph; the input's layout from its shape against the spec's (H, W, C)."""
    import onnx
    from onnx import helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    dims = {info.name: [d.dim_value if d.HasField("dim_value") else -1 for d in info.type.tensor_type.shape.dim]
            for info in (*graph.value_info, *graph.input, *graph.output)}
    shapes = {name: _per_image(d) for name, d in dims.items()}
    init_dims = {init.name: list(init.dims) for init in graph.initializer}
    first = next(i for i in graph.input if i.name not in constants)
    h, w, c = spec_input
    layout = "NHWC" if shapes.get(first.name) == (h, w, c) and (h, w, c) != (c, h, w) else "NCHW"
    static = _onnx_static(graph, constants)
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = init_dims.get(node.input[1], [None])[-1] if node.op_type == "Conv" and len(node.input) > 1 else None
        kind = _ONNX_KINDS.get(node.op_type, "plumbing")
        shape = shapes.get(node.output[0])
        data = [i for i in node.input if i and i not in static]
        if kind == "flatten" and shape is not None and len(shape) > 1:
            kind = "neutral"  # a reshape that keeps the image's axes (tf2onnx's NHWC -> NCHW of one channel)
        if kind == "scale" and len(data) != 1:
            kind = "plumbing"  # an elementwise product of two computed tensors: no scaling by a constant
        if node.op_type == "Max" and len(data) == 1 and len(node.input) == 2 and _onnx_zero(graph, node, static):
            kind = "relu"  # max(x, 0) (jax2tf's ReLU through tf2onnx)
        nodes.append(GraphNode(
            op=node.op_type, kind=kind, inputs=data, output=node.output[0], shape=shape, kernel=kernel,
            constants=[i for i in node.input if i in static], operands=list(node.input), attributes=attrs))
    refine(nodes, {o.name for o in graph.output})
    _onnx_layouts(nodes, first.name, layout)
    types = {init.data_type for init in graph.initializer}
    quantised = any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in graph.node)
    precision = "int8" if quantised else ("float16" if _ONNX_FLOAT16 in types else "float32")
    return Graph("onnx", first.name, layout, nodes, precision)


def _onnx_static(graph: Any, constants: set[str]) -> set[str]:
    """Tensors whose values do not depend on the input's values: constants, shapes, and what only they compute."""
    static = set(constants)
    for node in graph.node:
        ins = [i for i in node.input if i]
        if node.op_type == "Shape" or (ins and all(i in static for i in ins)):
            static.update(node.output)
    return static


def _onnx_zero(graph: Any, node: Any, static: set[str]) -> bool:
    """Whether the static operand of `node` holds zeros only: every float constant it is computed from is zero."""
    from onnx import numpy_helper

    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    frontier, values = [i for i in node.input if i in static], []
    while frontier:
        tensor = frontier.pop()
        if tensor in inits:
            values.append(numpy_helper.to_array(inits[tensor]))
        elif tensor in producers and producers[tensor].op_type != "Shape":
            frontier += [i for i in producers[tensor].input if i]
    floats = [v for v in values if np.issubdtype(v.dtype, np.floating)]
    return bool(floats) and not any(np.any(v) for v in floats)


def _onnx_layouts(nodes: list[GraphNode], source: str, layout: str) -> None:
    """Each 4-D output's layout: NCHW for ONNX's convolutions and pools, permuted by a Transpose, else its input's."""
    known = {source: layout}
    for node in nodes:
        before = known.get(node.inputs[0], "") if node.inputs else ""
        if node.kind in ("conv", "maxpool", "avgpool", "bn"):
            after = "NCHW"
        elif node.op == "Transpose":
            after = layout_after(before, list(node.attributes.get("perm", [])))
        else:
            after = before
        if node.shape is not None and len(node.shape) != 3:
            after = ""
        node.layout = after
        known[node.output] = after


def read_tflite(path: Path) -> Graph:
    """The `.tflite` file's first subgraph, operators in execution order."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    tensors = [sub.Tensors(i) for i in range(sub.TensorsLength())]
    constant = {i for i, t in enumerate(tensors) if _has_data(model, t)}
    ops = [(names.get(codes[op.OpcodeIndex()], str(codes[op.OpcodeIndex()])), op)
           for op in (sub.Operators(i) for i in range(sub.OperatorsLength()))]
    static = _static_tensors(ops, constant)
    layouts: dict[int, str] = {int(sub.InputsAsNumpy()[0]): "NHWC"}
    nodes = []
    for name, op in ops:
        ins = [int(t) for t in op.InputsAsNumpy() if int(t) >= 0]
        out = int(op.OutputsAsNumpy()[0])
        shape = _tflite_shape(tensors[out])
        weight = tensors[ins[1]] if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 1 else None
        kind = _tflite_kind(model, tensors, name, ins, static)
        layout = _tflite_layout(model, tensors, name, ins, layouts) if shape and len(shape) == 3 else ""
        layouts[out] = layout
        nodes.append(GraphNode(
            op=name, kind=kind,
            inputs=[_tname(tensors[t]) for t in ins if t not in static],
            output=_tname(tensors[out]), shape=shape, layout=layout,
            fused=_fused_activation(schema, op, name),
            kernel=int(weight.ShapeAsNumpy()[1]) if weight is not None else None,
            constants=[_tname(tensors[t]) for t in ins if t in static],
            operands=[_tname(tensors[t]) for t in ins], attributes=_options(schema, op, name),
            quantisation=_quantisation(tensors[out]),
            weight_quantisation=_weight_quantisation(tensors, ins, constant) if kind in ("conv", "dense") else None))
    refine(nodes, {_tname(tensors[int(t)]) for t in sub.OutputsAsNumpy()})
    source = _tname(tensors[int(sub.InputsAsNumpy()[0])])
    return Graph("tflite", source, "NHWC", nodes, _tflite_precision(tensors, constant, nodes))


def _tflite_precision(tensors: list[Any], constant: set[int], nodes: list[GraphNode]) -> str:
    if any(t.Type() in _TFLITE_INT8 for i, t in enumerate(tensors) if i not in constant):
        return "int8"
    if any(n.weight_quantisation for n in nodes):
        return "int8-dynamic"
    float16 = any(t.Type() == _TFLITE_FLOAT16 for i, t in enumerate(tensors) if i in constant)
    return "float16" if float16 else "float32"


def _static_tensors(ops: list[tuple[str, Any]], constant: set[int]) -> set[int]:
    """Tensors whose values do not depend on the input's values: constants, shapes, and what only they compute."""
    static = set(constant)
    for name, op in ops:
        ins = [int(t) for t in op.InputsAsNumpy() if int(t) >= 0]
        if name == "SHAPE" or (ins and all(t in static for t in ins)):
            static.update(int(t) for t in op.OutputsAsNumpy())
    return static


def _tflite_kind(model: Any, tensors: list[Any], name: str, ins: list[int], static: set[int]) -> str:
    kind = _TFLITE_KINDS.get(name, "plumbing")
    data = [t for t in ins if t not in static]
    if name == "DEPTHWISE_CONV_2D" and data and _channels(tensors[data[0]]) == 1:
        return "conv"  # one input channel: each output channel is a full convolution of it
    if name == "MAXIMUM" and len(data) == 1 and len(ins) == 2:
        other = _constant_value(model, tensors, next(t for t in ins if t in static))
        return "relu" if other is not None and not np.any(other) else "plumbing"
    if kind == "scale" and len(data) != 1:
        return "plumbing"
    return kind


def _channels(tensor: Any) -> int | None:
    dims = [int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy())] if tensor.ShapeLength() else []
    return dims[-1] if len(dims) == 4 else None


#: LiteRT TensorType -> NumPy dtype of the constants read for their values
_TFLITE_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64, 9: np.int8}


def _constant_value(model: Any, tensors: list[Any], index: int, depth: int = 8) -> np.ndarray | None:
    """A constant tensor's values, or None where it has no buffer of a known type (computed, or exotic)."""
    tensor = tensors[index]
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None or buffer.DataLength() == 0 or tensor.Type() not in _TFLITE_DTYPES:
        return _producer_value(model, tensors, index, depth)
    value = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=_TFLITE_DTYPES[tensor.Type()])
    q = _quantisation(tensor)
    if q and tensor.Type() in _TFLITE_INT8 and len(q["scale"]) == 1:  # an integer constant: its real values
        return (value.astype(np.float64) - q["zero_point"][0]) * q["scale"][0]
    return value


def _producer_value(model: Any, tensors: list[Any], index: int, depth: int) -> np.ndarray | None:
    """The value a static tensor broadcasts / dequantises (its producer's first input), searched `depth` deep."""
    if depth <= 0:
        return None
    sub = model.Subgraphs(0)
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if index in (int(t) for t in op.OutputsAsNumpy()):
            first = int(op.InputsAsNumpy()[0]) if op.InputsLength() else -1
            return _constant_value(model, tensors, first, depth - 1) if first >= 0 else None
    return None


def _tflite_layout(model: Any, tensors: list[Any], name: str, ins: list[int], layouts: dict[int, str]) -> str:
    """NHWC, except a TRANSPOSE's output: its input's layout permuted by its constant `perm`."""
    if name != "TRANSPOSE" or len(ins) < 2:
        return "NHWC"
    perm = _constant_value(model, tensors, ins[1])
    before = layouts.get(ins[0], "NHWC")
    return layout_after(before, [int(p) for p in perm]) if perm is not None and before else ""


def _weight_quantisation(tensors: list[Any], ins: list[int], constant: set[int]) -> dict[str, Any] | None:
    """An integer-stored constant weight's scales and their axis (None for float weights)."""
    if len(ins) < 2 or ins[1] not in constant or tensors[ins[1]].Type() not in _TFLITE_INT8:
        return None
    q = tensors[ins[1]].Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    return {"scale": [float(s) for s in q.ScaleAsNumpy()], "axis": int(q.QuantizedDimension())}


def refine(nodes: list[GraphNode], outputs: set[str]) -> None:
    """A reshape keeping its input's per-image shape (or of a feature vector) is neutral; an operator only `SHAPE`
    reads is plumbing."""
    shapes = {n.output: n.shape for n in nodes}
    readers: dict[str, list[GraphNode]] = {}
    for node in nodes:
        for tensor in node.inputs:
            readers.setdefault(tensor, []).append(node)
    kinds = {n.output: n.kind for n in nodes}
    for node in nodes:
        before = shapes.get(node.inputs[0]) if node.inputs else None
        if node.kind == "flatten" and node.inputs and (
                (node.shape is not None and before == node.shape) or (before is not None and len(before) == 1)
                or kinds.get(node.inputs[0]) == "dense"):  # a feature vector reshaped to itself (jax2tf)
            node.kind = "neutral"
        users = readers.get(node.output, [])
        if node.kind != "plumbing" and node.output not in outputs and users \
                and all(u.op in ("SHAPE", "Shape") for u in users):
            node.kind = "plumbing"


def _tname(tensor: Any) -> str:
    return tensor.Name().decode()


def _has_data(model: Any, tensor: Any) -> bool:
    buffer = model.Buffers(tensor.Buffer())
    return buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)


def _tflite_shape(tensor: Any) -> tuple[int, ...] | None:
    signature = tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else tensor.ShapeAsNumpy()
    dims = [int(d) for d in np.atleast_1d(signature)]
    if tensor.ShapeSignatureLength() == 0:
        dims = [int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy())]
    return tuple(dims[1:]) if len(dims) >= 2 and all(d > 0 for d in dims[1:]) else None


def _fused_activation(schema: Any, op: Any, name: str) -> str | None:
    options = {"CONV_2D": schema.Conv2DOptions, "FULLY_CONNECTED": schema.FullyConnectedOptions,
               "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptions, "MAX_POOL_2D": schema.Pool2DOptions,
               "AVERAGE_POOL_2D": schema.Pool2DOptions,
               "ADD": schema.AddOptions}.get(name)
    table = op.BuiltinOptions()
    if options is None or table is None:
        return None
    parsed = options()
    parsed.Init(table.Bytes, table.Pos)
    return _TFLITE_ACTIVATIONS.get(parsed.FusedActivationFunction(), "unknown")


def _options(schema: Any, op: Any, name: str) -> dict[str, Any]:
    """Strides, padding and window of a LiteRT convolution or pool (ONNX's attribute names)."""
    options = {"CONV_2D": schema.Conv2DOptions, "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptions,
               "MAX_POOL_2D": schema.Pool2DOptions,
               "AVERAGE_POOL_2D": schema.Pool2DOptions}.get(name)
    table = op.BuiltinOptions()
    if options is None or table is None:
        return {}
    parsed = options()
    parsed.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {"strides": [parsed.StrideH(), parsed.StrideW()],
                           "padding": "SAME" if parsed.Padding() == schema.Padding.SAME else "VALID"}
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out["kernel_shape"] = [parsed.FilterHeight(), parsed.FilterWidth()]
    return out


def _quantisation(tensor: Any) -> dict[str, Any] | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    return {"scale": [float(s) for s in q.ScaleAsNumpy()], "zero_point": [int(z) for z in q.ZeroPointAsNumpy()]}
