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

`Graph.precision` is how the artifact stores its numbers: ``int8`` where any computed tensor is an integer one
(full-integer quantisation), else ``float16`` where any weight is stored as float16, else ``float32``.
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


@dataclass
class Graph:
    format: str  # "onnx" | "tflite"
    input: str
    input_layout: str
    nodes: list[GraphNode]
    precision: str = "float32"  # int8 | float16 | float32 (see the module's docstring)

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
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = init_dims.get(node.input[1], [None])[-1] if node.op_type == "Conv" and len(node.input) > 1 else None
        kind = _ONNX_KINDS.get(node.op_type, "plumbing")
        shape = shapes.get(node.output[0])
        if kind == "flatten" and shape is not None and len(shape) > 1:
            kind = "neutral"  # a reshape that keeps the image's axes (tf2onnx's NHWC -> NCHW of one channel)
        if kind == "scale" and sum(i not in constants for i in node.input if i) != 1:
            kind = "plumbing"  # an elementwise product of two computed tensors: no scaling by a constant
        nodes.append(GraphNode(
            op=node.op_type, kind=kind,
            inputs=[i for i in node.input if i and i not in constants],
            output=node.output[0], shape=shape, kernel=kernel,
            constants=[i for i in node.input if i in constants], operands=list(node.input), attributes=attrs))
    _onnx_layouts(nodes, first.name, layout)
    types = {init.data_type for init in graph.initializer}
    quantised = any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in graph.node)
    precision = "int8" if quantised else ("float16" if _ONNX_FLOAT16 in types else "float32")
    return Graph("onnx", first.name, layout, nodes, precision)


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
    nodes = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        name = names.get(codes[op.OpcodeIndex()], str(codes[op.OpcodeIndex()]))
        ins = [int(t) for t in op.InputsAsNumpy() if int(t) >= 0]
        out = int(op.OutputsAsNumpy()[0])
        shape = _tflite_shape(tensors[out])
        weight = tensors[ins[1]] if name == "CONV_2D" and len(ins) > 1 else None
        kind = _TFLITE_KINDS.get(name, "plumbing")
        if kind == "scale" and sum(t not in constant for t in ins) != 1:
            kind = "plumbing"
        nodes.append(GraphNode(
            op=name, kind=kind,
            inputs=[_tname(tensors[t]) for t in ins if t not in constant],
            output=_tname(tensors[out]), shape=shape, layout="NHWC" if shape and len(shape) == 3 else "",
            fused=_fused_activation(schema, op, name),
            kernel=int(weight.ShapeAsNumpy()[1]) if weight is not None else None,
            constants=[_tname(tensors[t]) for t in ins if t in constant],
            operands=[_tname(tensors[t]) for t in ins], attributes=_options(schema, op, name),
            quantisation=_quantisation(tensors[out])))
    source = _tname(tensors[int(sub.InputsAsNumpy()[0])])
    computed_int8 = any(t.Type() in _TFLITE_INT8 for i, t in enumerate(tensors) if i not in constant)
    float16 = any(t.Type() == _TFLITE_FLOAT16 for i, t in enumerate(tensors) if i in constant)
    return Graph("tflite", source, "NHWC", nodes, "int8" if computed_int8 else ("float16" if float16 else "float32"))


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
               "MAX_POOL_2D": schema.Pool2DOptions, "AVERAGE_POOL_2D": schema.Pool2DOptions,
               "ADD": schema.AddOptions}.get(name)
    table = op.BuiltinOptions()
    if options is None or table is None:
        return None
    parsed = options()
    parsed.Init(table.Bytes, table.Pos)
    return _TFLITE_ACTIVATIONS.get(parsed.FusedActivationFunction(), "unknown")


def _options(schema: Any, op: Any, name: str) -> dict[str, Any]:
    """Strides, padding and window of a LiteRT convolution or pool (ONNX's attribute names)."""
    options = {"CONV_2D": schema.Conv2DOptions, "MAX_POOL_2D": schema.Pool2DOptions,
               "AVERAGE_POOL_2D": schema.Pool2DOptions}.get(name)
    table = op.BuiltinOptions()
    if options is None or table is None:
        return {}
    parsed = options()
    parsed.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {"strides": [parsed.StrideH(), parsed.StrideW()],
                           "padding": "SAME" if parsed.Padding() == schema.Padding.SAME else "VALID"}
    if name != "CONV_2D":
        out["kernel_shape"] = [parsed.FilterHeight(), parsed.FilterWidth()]
    return out


def _quantisation(tensor: Any) -> dict[str, Any] | None:
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    return {"scale": [float(s) for s in q.ScaleAsNumpy()], "zero_point": [int(z) for z in q.ZeroPointAsNumpy()]}
