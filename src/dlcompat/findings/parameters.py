"""An artifact's parameters per aligned layer, brought to the canonical layout (`zoo.spec`), and the canonical
parameters the artifact should hold (with a batch norm folded into its convolution where the converter folded it).

ONNX: the initializers of the layer's operator (Conv weight (O, I, kh, kw) as is; Gemm's B transposed unless
transB; MatMul's (in, units) transposed). LiteRT: the flatbuffer's buffers (CONV_2D (O, kh, kw, I) -> (O, I, kh, kw);
FULLY_CONNECTED (units, in) as is; DEPTHWISE_CONV_2D of one input channel (1, kh, kw, O) -> (O, 1, kh, kw)), float16
constants through their DEQUANTIZE, integer ones dequantised with their scale / zero point (per channel along the
tensor's quantized dimension: 0, or 3 for a depthwise kernel). A dense layer after a flatten of an NHWC tensor
holds its columns in (H, W, C) order: they are permuted to the canonical (C, H, W).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.findings.align import Alignment, LayerAlignment
from dlcompat.findings.graph import GraphNode
from dlcompat.zoo.reference import fold_batch_norm
from dlcompat.zoo.spec import BatchNorm, Conv2D, Dense, ModelSpec

_TFLITE_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


@dataclass(frozen=True)
class Constant:
    value: np.ndarray  # float64, as the operator uses it (dequantised)
    stored: str  # the stored dtype: float32, float16, int8, ...
    quantisation: dict[str, Any] | None = None


def onnx_constants(path: Path) -> dict[str, Constant]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    out = {}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        out[init.name] = Constant(value.astype(np.float64), value.dtype.name)
    return out


def tflite_constants(path: Path) -> dict[str, Constant]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    sub = model.Subgraphs(0)
    out: dict[str, Constant] = {}
    for i in range(sub.TensorsLength()):
        tensor = sub.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0 or tensor.Type() not in _TFLITE_DTYPES:
            continue
        raw = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=_TFLITE_DTYPES[tensor.Type()])
        shape = [int(d) for d in np.atleast_1d(tensor.ShapeAsNumpy())] if tensor.ShapeLength() else []
        raw = raw.reshape(shape)
        q = tensor.Quantization()
        quant = None
        value = raw.astype(np.float64)
        if q is not None and q.ScaleLength() and np.issubdtype(raw.dtype, np.integer):
            scale, zero = q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64)
            axis = int(q.QuantizedDimension())  # per-channel scales lie along it (3 for a depthwise kernel)
            axis_shape = tuple(-1 if d == axis else 1 for d in range(raw.ndim)) if scale.size > 1 else ()
            value = (value - zero.reshape(axis_shape)) * scale.reshape(axis_shape)
            quant = {"scale": scale.tolist(), "zero_point": zero.astype(int).tolist()}
        out[tensor.Name().decode()] = Constant(value, raw.dtype.name, quant)
    return out


def artifact_parameters(node: GraphNode, constants: Mapping[str, Constant], fmt: str,
                        dequantized: Mapping[str, str], hwc: tuple[int, int, int] | None) -> dict[str, Constant]:
    """{"weight", "bias"} of a conv / dense operator, canonical layout. `dequantized` maps a DEQUANTIZE output to its
    constant input; `hwc` is (C, H, W) when the dense's features come in (H, W, C) order."""
    names = [dequantized.get(n, n) for n in node.operands[1:]]
    values = [constants[n] for n in names if n in constants]
    if not values:
        return {}
    weight, bias = values[0], (values[1] if len(values) > 1 else None)
    w = weight.value
    if node.op == "CONV_2D":
        w = w.transpose(0, 3, 1, 2)
    elif node.op == "DEPTHWISE_CONV_2D":  # (1, kh, kw, O) of a one-channel input: the conv's (O, 1, kh, kw)
        w = w.transpose(3, 0, 1, 2)
    elif node.op == "MatMul" or (node.op == "Gemm" and not node.attributes.get("transB", 0)):
        w = w.T
    if node.kind == "dense" and hwc is not None:
        c, h, ww = hwc
        w = w.reshape(len(w), h, ww, c).transpose(0, 3, 1, 2).reshape(len(w), -1)
    out = {"weight": Constant(w, weight.stored, weight.quantisation)}
    if bias is not None:
        out["bias"] = bias
    return out


def expected_parameters(spec: ModelSpec, weights: Mapping[str, np.ndarray], entry: LayerAlignment, *,
                        eps: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """The canonical weight and bias the group's operator should hold (a batch norm in the group folded in, with
    its spec's epsilon or the one `eps` gives for it by name)."""
    layers = {layer.name: layer for layer in spec.iter_layers()}
    main = next((layers[n] for n in entry.group if isinstance(layers[n], (Conv2D, Dense))), None)
    if main is None:
        return {}
    w = np.asarray(weights[f"{main.name}.weight"], np.float64)
    b = np.asarray(weights.get(f"{main.name}.bias", np.zeros(len(w))), np.float64)
    for name in entry.group:
        layer = layers[name]
        if isinstance(layer, BatchNorm):
            w, b, _ = fold_batch_norm(w, b, weights, name, (eps or {}).get(name, layer.eps))
    return {"weight": w, "bias": b}


def layer_parameters(path: Path, alignment: Alignment, nodes: list[GraphNode]) -> dict[str, dict[str, Constant]]:
    """{aligned layer: its operator's parameters, canonical layout} for the conv / dense operators."""
    constants = onnx_constants(path) if alignment.format == "onnx" else tflite_constants(path)
    dequantized = {n.output: n.inputs[0] if n.inputs else n.constants[0] for n in nodes
                   if n.op in ("DEQUANTIZE", "DequantizeLinear") and (n.inputs or n.constants)}
    dequantized = {k: v for k, v in dequantized.items() if v in constants}
    by_output = {n.output: n for n in nodes}
    hwc = next((e.normalise.source_shape for e in alignment.layers
                if e.normalise is not None and e.normalise.flatten_order == "HWC"), None)
    out = {}
    for entry in alignment.layers:
        if entry.passthrough:
            continue  # no operator computes the layer: the tensor's operator is another layer's
        found = by_output.get(entry.tensor or "")
        node = operator_of(found, by_output) if found is not None else None
        if node is not None and node.kind in ("conv", "dense"):
            after_flatten = hwc if _reads_flatten(node, alignment, by_output) else None
            out[entry.layer] = artifact_parameters(node, constants, alignment.format, dequantized, after_flatten)
            if node is not found and found.constants and found.constants[0] in constants:
                out[entry.layer]["bias"] = constants[found.constants[0]]  # the separate bias Add
    return out


def operator_of(node: GraphNode, by_output: Mapping[str, GraphNode]) -> GraphNode:
    """The conv / dense operator behind an aligned tensor: `node` itself, or the MatMul / Conv whose product a
    separate bias Add (`node`) completes."""
    if node.kind == "add" and len(node.inputs) == 1 and node.constants:
        base = by_output.get(node.inputs[0])
        if base is not None and base.kind in ("conv", "dense"):
            return base
    return node


def _reads_flatten(node: GraphNode, alignment: Alignment, by_output: Mapping[str, GraphNode]) -> bool:
    flattened = {e.tensor for e in alignment.layers if e.normalise is not None and e.normalise.flatten_order == "HWC"}
    return any(i in flattened for i in node.inputs)
