"""TensorFlow graphs in the vocabulary of `findings.graph`: a TensorFlow.js graph model's operator graph (the
`.tfjs.zip` archive of the `keras.tfjs` edge: `model.json` and its weight shards), read from the file alone.

`model.json` holds TensorFlow's GraphDef as JSON (node name, op, inputs, attributes); the node names are the tensors
`TfjsRunner.intermediates` hands back (``StatefulPartitionedCall/lenet5_1/conv1_1/convolution``). It carries no
shapes: each node's per-image shape is propagated from the input's (the `Placeholder`'s ``shape``) through the
operators' attributes (strides, padding, window) and the weights' shapes of the manifest; the few integer constants
that decide a shape (a `Pad`'s paddings, a `Reshape`'s shape, a `Transpose`'s perm, a `Mean`'s axes) are read from
the weight shards. TensorFlow computes NHWC (an operator's ``data_format`` says otherwise where it does).

TensorFlow's grappler fuses a bias and an activation into ``_FusedConv2D`` / ``_FusedMatMul`` (their ``fused_ops``:
``BiasAdd``, ``Relu``): the activation is the node's fused one, as LiteRT's. It also moves a ReLU after the max pool
that follows it (relu(maxpool(x)) == maxpool(relu(x)): max commutes with a monotone function); `findings.align`
accepts that swap and says so per layer.

onnx2tf's SavedModel is read the same way (`graph_def_graph`), from its traced function's GraphDef as its runner
hands it over (`OnnxToTfRunner.graph_nodes`: the weights are the function's captured tensors).

`Graph.precision`: ``float16`` where the archive stores weights as float16 (the ``float16`` variant); ``uint8`` /
``uint16`` where it stores them affinely quantised (TF.js dequantises them at load and computes in float32; see
`WEIGHT_QUANTISED`), else ``float32``.
"""

from __future__ import annotations

import base64
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.findings.graph import Graph, GraphNode, layout_after, refine

_TF_KINDS = {
    "Conv2D": "conv", "_FusedConv2D": "conv", "MatMul": "dense", "_FusedMatMul": "dense", "Relu": "relu",
    "Relu6": "relu6", "Tanh": "tanh", "Sigmoid": "sigmoid", "MaxPool": "maxpool", "AvgPool": "avgpool",
    "Mean": "gap", "Reshape": "flatten", "Add": "add", "AddV2": "add", "BiasAdd": "add",
    "FusedBatchNorm": "bn", "FusedBatchNormV3": "bn", "Identity": "neutral", "Transpose": "neutral",
    "Cast": "neutral", "Pad": "neutral", "Mul": "scale", "RealDiv": "scale", "Sub": "scale",
}
#: operators whose output has their first data input's per-image shape
_ELEMENTWISE = ("Relu", "Relu6", "Tanh", "Sigmoid", "Add", "AddV2", "BiasAdd", "FusedBatchNorm", "FusedBatchNormV3",
                "Identity", "Cast", "Mul", "RealDiv", "Sub", "Maximum")
#: `fused_ops` of a fused node -> the spec's activation
_FUSED_ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Tanh": "tanh", "Sigmoid": "sigmoid"}
#: precisions of archives whose weights TF.js stores affinely quantised and dequantises at load
WEIGHT_QUANTISED = ("uint8", "uint16")
_DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8,
           "uint16": np.uint16, "bool": np.bool_}


def read_model_json(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("model.json"))


def tfjs_weights(path: Path) -> dict[str, np.ndarray]:
    """Every weight of the archive by node name, as TF.js holds it after loading (quantised ones dequantised)."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        model = json.loads(archive.read("model.json"))
        for group in model.get("weightsManifest", []):
            data = b"".join(archive.read(p) for p in group["paths"])
            offset = 0
            for entry in group["weights"]:
                q = entry.get("quantization")
                stored = _DTYPES[q["dtype"] if q else entry["dtype"]]
                count = int(np.prod(entry["shape"], dtype=np.int64))
                value = np.frombuffer(data, dtype=stored, count=count, offset=offset).reshape(entry["shape"])
                offset += count * np.dtype(stored).itemsize
                if q and q["dtype"] in WEIGHT_QUANTISED:
                    value = value.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
                out[entry["name"]] = value
    return out


def _precision(model: dict[str, Any]) -> str:
    dtypes = {(w.get("quantization") or {}).get("dtype") for g in model.get("weightsManifest", [])
              for w in g["weights"]}
    return next((d for d in ("float16", *WEIGHT_QUANTISED) if d in dtypes), "float32")


def _attr(node: dict[str, Any], key: str) -> Any:
    """An attribute's value: a list's ints, a string (decoded), an int or a bool."""
    value = node.get("attr", {}).get(key, {})
    if "list" in value:
        listed = value["list"]
        return [int(i) for i in listed.get("i", [])] or [base64.b64decode(s).decode() for s in listed.get("s", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    return value.get("b")


def _tensor(name: str) -> str | None:
    """A node input's tensor: its node's name for output 0; None for control inputs and other outputs."""
    if name.startswith("^"):
        return None
    base, _, index = name.partition(":")
    return base if index in ("", "0") else None


def read_tfjs(path: Path) -> Graph:
    """The archive's graph model (see the module's docstring); `ValueError` for a layers model."""
    model = read_model_json(Path(path))
    if model.get("format") != "graph-model":
        raise ValueError(f"{path} is a TF.js layers model: only graph models are read")
    topology = model["modelTopology"]["node"]
    source = next(n["name"] for n in topology if n["op"] == "Placeholder")
    outputs = {_tensor(o["name"]) or "" for o in model.get("signature", {}).get("outputs", {}).values()}
    graph = graph_def_graph(topology, tfjs_weights(Path(path)), source, outputs)
    graph.precision = _precision(model)
    return graph


def graph_def_graph(topology: list[dict[str, Any]], values: dict[str, np.ndarray], source: str,
                    outputs: set[str], fmt: str = "tfjs") -> Graph:
    """A TensorFlow GraphDef as JSON (`json_format.MessageToDict`'s nodes: TF.js's `model.json`, a SavedModel's
    traced function) as a graph: `values` holds its constants (by node name), `source` is its input; every other
    `Placeholder` is a captured constant (a traced function's weights)."""
    static = {n["name"] for n in topology if n["op"] == "Const" or (n["op"] == "Placeholder" and n["name"] != source)}
    for node in topology:
        ins = [t for t in map(_tensor, node.get("input", [])) if t]
        if node["op"] == "Shape" or (ins and all(t in static for t in ins)):
            static.add(node["name"])
        if node["op"] in ("Squeeze", "Identity") and node["name"] in static and ins and ins[0] in values:
            values[node["name"]] = np.squeeze(values[ins[0]]) if node["op"] == "Squeeze" else values[ins[0]]
        if node["op"] == "Pack" and node["name"] in static:  # a shape packed from constants and the batch size
            values[node["name"]] = np.array([int(np.asarray(values[t]).reshape(-1)[0]) if t in values else -1
                                             for t in ins])
    dims = [int(d.get("size", -1)) for d in _attr_shape(next(n for n in topology if n["name"] == source))]
    shapes: dict[str, tuple[int, ...] | None] = {source: tuple(dims[1:]) if dims else None}
    layouts = {source: "NHWC"}
    nodes = []
    for node in topology:
        if node["name"] in static or node["name"] == source:
            continue
        operands = [t for t in map(_tensor, node.get("input", [])) if t]
        data = [t for t in operands if t not in static]
        shape = _shape(node, data, operands, shapes, values)
        shapes[node["name"]] = shape
        layout = _layout(node, data, layouts, values) if shape is not None and len(shape) == 3 else ""
        layouts[node["name"]] = layout
        nodes.append(GraphNode(
            op=node["op"], kind=_kind(node, data, operands, values), inputs=data, output=node["name"], shape=shape,
            layout=layout, fused=_fused(node), kernel=_kernel(node, operands, values),
            constants=[t for t in operands if t in static], operands=operands, attributes=_attributes(node)))
    refine(nodes, outputs or {nodes[-1].output})
    return Graph(fmt, source, "NHWC", nodes)


def _attr_shape(node: dict[str, Any]) -> list[dict[str, Any]]:
    return node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])


def _kind(node: dict[str, Any], data: list[str], operands: list[str], values: dict[str, np.ndarray]) -> str:
    op = node["op"]
    if op == "DepthwiseConv2dNative" and len(operands) > 1 and operands[1] in values \
            and values[operands[1]].shape[2] == 1:
        return "conv"  # one input channel: each output channel is a full convolution of it
    if op == "Maximum" and len(data) == 1 and len(operands) == 2:
        other = values.get(next(t for t in operands if t not in data))
        return "relu" if other is not None and not np.any(other) else "plumbing"
    kind = _TF_KINDS.get(op, "plumbing")
    if kind == "scale" and len(data) != 1:
        return "plumbing"
    return kind


def _fused(node: dict[str, Any]) -> str | None:
    fused = [f for f in _attr(node, "fused_ops") or [] if f in _FUSED_ACTIVATIONS]
    return _FUSED_ACTIVATIONS[fused[-1]] if fused else None


def _kernel(node: dict[str, Any], operands: list[str], values: dict[str, np.ndarray]) -> int | None:
    if node["op"] in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative") and len(operands) > 1 \
            and operands[1] in values:
        return int(values[operands[1]].shape[0])  # HWIO
    return None


def _attributes(node: dict[str, Any]) -> dict[str, Any]:
    """Strides, padding and window of a convolution or pool (ONNX's attribute names, NHWC's H and W)."""
    if node["op"] not in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool"):
        return {}
    strides, padding = _attr(node, "strides") or [1, 1, 1, 1], _attr(node, "padding") or "VALID"
    out: dict[str, Any] = {"strides": strides[1:3], "padding": padding}
    if node["op"] in ("MaxPool", "AvgPool"):
        out["kernel_shape"] = (_attr(node, "ksize") or [1, 1, 1, 1])[1:3]
    if padding == "EXPLICIT":
        pads = _attr(node, "explicit_paddings") or [0] * 8
        out["pads"] = [pads[2], pads[4], pads[3], pads[5]]  # top, left, bottom, right
    return out


def _window(size: int, kernel: int, stride: int, padding: str, pad: int) -> int:
    if padding == "SAME":
        return math.ceil(size / stride)
    return (size + pad - kernel) // stride + 1


def _shape(node: dict[str, Any], data: list[str], operands: list[str], shapes: dict[str, tuple[int, ...] | None],
           values: dict[str, np.ndarray]) -> tuple[int, ...] | None:
    """The output's per-image shape from its input's and the operator's attributes; None where unknown."""
    op = node["op"]
    before = shapes.get(data[0]) if data else None
    if before is None:
        return None
    if op in _ELEMENTWISE:
        return before
    const = [values.get(t) for t in operands[1:]]
    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool"):
        return _spatial(node, before, const[0] if const else None)
    if op in ("MatMul", "_FusedMatMul") and const and const[0] is not None:
        return (int(const[0].shape[0 if _attr(node, "transpose_b") else 1]),)
    if op == "Pad" and const and const[0] is not None and len(before) == 3:
        pads = np.asarray(const[0]).reshape(-1, 2)[1:]
        return tuple(int(d + p.sum()) for d, p in zip(before, pads, strict=True))
    if op == "Transpose" and const and const[0] is not None:
        perm = [int(p) for p in np.asarray(const[0])]
        full = (0, *before)
        return tuple(full[p] for p in perm)[1:] if len(perm) == len(full) else None
    if op == "Mean" and const and const[0] is not None:
        axes = {int(a) % (len(before) + 1) for a in np.atleast_1d(const[0])}
        keep = bool(_attr(node, "keep_dims"))
        return tuple(1 if i + 1 in axes else d for i, d in enumerate(before) if keep or i + 1 not in axes)
    if op == "Reshape":
        return _reshaped(operands, values, before)
    return None


def _spatial(node: dict[str, Any], before: tuple[int, ...], weight: np.ndarray | None) -> tuple[int, ...] | None:
    if len(before) != 3 or (_attr(node, "data_format") or "NHWC") != "NHWC":
        return None
    h, w, c = before
    strides = (_attr(node, "strides") or [1, 1, 1, 1])[1:3]
    padding = _attr(node, "padding") or "VALID"
    pads = _attributes(node).get("pads", [0, 0, 0, 0])
    if node["op"] in ("MaxPool", "AvgPool"):
        kh, kw = (_attr(node, "ksize") or [1, 1, 1, 1])[1:3]
        out = c
    elif weight is not None:
        kh, kw = int(weight.shape[0]), int(weight.shape[1])
        out = int(weight.shape[3]) * (c if node["op"] == "DepthwiseConv2dNative" else 1)
    else:
        return None
    return (_window(h, kh, strides[0], padding, pads[0] + pads[2]),
            _window(w, kw, strides[1], padding, pads[1] + pads[3]), out)


def _reshaped(operands: list[str], values: dict[str, np.ndarray], before: tuple[int, ...]) -> tuple[int, ...] | None:
    """A Reshape's per-image shape: its constant shape's dims after the batch, a -1 solved from the input's size."""
    if len(operands) < 2 or operands[1] not in values:
        return None
    dims = [int(d) for d in np.atleast_1d(values[operands[1]])][1:]
    size = int(np.prod(before))
    if dims.count(-1) == 1:
        rest = int(np.prod([d for d in dims if d != -1]))
        dims = [size // rest if d == -1 else d for d in dims]
    return tuple(dims) if int(np.prod(dims)) == size else None


def _layout(node: dict[str, Any], data: list[str], layouts: dict[str, str], values: dict[str, np.ndarray]) -> str:
    """NHWC (or the operator's `data_format`), a Transpose's input layout permuted by its perm, else its input's."""
    fmt = _attr(node, "data_format")
    if node["op"] in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool"):
        return fmt if fmt in ("NHWC", "NCHW") else "NHWC"
    before = layouts.get(data[0], "") if data else ""
    if node["op"] == "Transpose" and len(node.get("input", [])) > 1:
        perm = values.get(_tensor(node["input"][1]) or "")
        return layout_after(before, [int(p) for p in perm]) if perm is not None and before else ""
    return before


def tfjs_parameters(path: Path, graph: Graph, alignment: Any, spec: Any) -> dict[str, np.ndarray]:
    """The archive's convolution / dense weights and biases as TF.js holds them, in the canonical layout
    (`graph_parameters`)."""
    return graph_parameters(tfjs_weights(Path(path)), graph, alignment, spec)


def graph_parameters(values: dict[str, np.ndarray], graph: Graph, alignment: Any, spec: Any) -> dict[str, np.ndarray]:
    """A TensorFlow graph's convolution / dense weights and biases (`values`: its constants by node name) in the
    canonical layout ({"conv1.weight": OIHW, "fc1.weight": (out, in) over channel-major features, "conv1.bias": ...}):
    each spec layer's operator found from the tensor aligned to it (or to the fused group holding it), its bias from a
    fused BiasAdd or the bias addition after it."""
    from dlcompat.findings.align import execution_order
    from dlcompat.zoo.spec import Conv2D, Dense

    flatten = next((e for e in alignment.layers if e.normalise is not None and e.normalise.flatten_order == "HWC"),
                   None)
    out: dict[str, np.ndarray] = {}
    for layer in (x for x in execution_order(spec.layers) if isinstance(x, Conv2D | Dense)):
        entry = next((e for e in alignment.layers if layer.name in e.group and e.tensor is not None), None)
        node, bias = graph.producer(entry.tensor) if entry is not None else None, None
        for _ in range(4):  # back from an activation / a separate BiasAdd to the operator
            if node is None or node.kind in ("conv", "dense"):
                break
            if node.kind == "add" and node.constants:
                bias = values.get(node.constants[0])
            node = graph.producer(node.inputs[0]) if node.inputs else None
        if node is None or node.kind not in ("conv", "dense") or not node.constants:
            continue
        if node.constants[0] not in values:
            continue
        kernel = np.asarray(values[node.constants[0]], np.float64)
        if node.kind == "conv":
            out[f"{layer.name}.weight"] = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        else:
            weight = kernel.T
            if flatten is not None and node.inputs == [flatten.tensor]:  # features in HWC order -> CHW
                c, h, w = flatten.normalise.source_shape
                weight = weight.reshape(len(weight), h, w, c).transpose(0, 3, 1, 2).reshape(len(weight), -1)
            out[f"{layer.name}.weight"] = weight
        bias = values.get(node.constants[1]) if bias is None and len(node.constants) > 1 else bias
        if bias is not None and np.size(bias) > 1:
            out[f"{layer.name}.bias"] = np.asarray(bias, np.float64)
    return out
