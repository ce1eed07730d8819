"""Seeded faults injected into copies of real artifacts, at canonical layers found through the honest artifact's
alignment (never by value): ONNX edited with the `onnx` package, `.tflite` with LiteRT's flatbuffer object API.

Each maker returns (kind, the injected canonical layer, the fault type a diagnosis should give,
`edit(source_path, target_path)`) tuples. Shared by `tests/findings` and `benchmarks/localisation.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.findings.align import Alignment, LayerAlignment
from dlcompat.zoo.spec import BatchNorm

Edit = Callable[[Path, Path], Path]

#: MNIST's and CIFAR-10's usual normalisation (mean, std), the "input normalisation changed" fault's
NORMALISATION = {1: ((0.1307,), (0.3081,)), 3: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


def operator_entry(alignment: Alignment, layer: str) -> LayerAlignment:
    """The entry whose operator computes `layer`: its own, or the fused / folded group's that holds it."""
    own = next((e for e in alignment.layers if e.layer == layer), None)
    if own is not None and own.tensor is not None and not own.passthrough:
        return own
    return next(e for e in alignment.layers if layer in e.group and e.tensor is not None and not e.passthrough)


def _bn_ratio(spec: Any, weights: Mapping[str, np.ndarray], bn: str, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel factor that refolds with `eps` instead of the spec's, beta) of batch norm `bn`."""
    spec_eps = next(layer.eps for layer in spec.iter_layers() if layer.name == bn and isinstance(layer, BatchNorm))
    var = np.asarray(weights[f"{bn}.var"], np.float64)
    return np.sqrt(var + spec_eps) / np.sqrt(var + eps), np.asarray(weights[f"{bn}.beta"], np.float64)


# --- ONNX ---------------------------------------------------------------------------------------------------------

def _onnx_edit(change: Callable[[Any], None]) -> Edit:
    def edit(source: Path, target: Path) -> Path:
        import onnx

        model = onnx.load(str(source))
        change(model.graph)
        onnx.save(model, str(target))
        return target

    return edit


def _producer(graph: Any, tensor: str) -> Any:
    return next(n for n in graph.node if tensor in n.output)


def _initializer(graph: Any, name: str) -> Any:
    return next(i for i in graph.initializer if i.name == name)


def _set_initializer(graph: Any, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    init = _initializer(graph, name)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value.astype(np.float32)), name))


def _get_initializer(graph: Any, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(_initializer(graph, name)).astype(np.float64)


def onnx_kernel_transposed(tensor: str) -> Edit:
    def change(graph: Any) -> None:
        conv = _producer(graph, tensor)
        _set_initializer(graph, conv.input[1], _get_initializer(graph, conv.input[1]).transpose(0, 1, 3, 2))

    return _onnx_edit(change)


def onnx_weights_fp16(tensor: str) -> Edit:
    def change(graph: Any) -> None:
        conv = _producer(graph, tensor)
        _set_initializer(graph, conv.input[1], _get_initializer(graph, conv.input[1]).astype(np.float16))

    return _onnx_edit(change)


def onnx_pads(tensor: str, pads: list[int]) -> Edit:
    def change(graph: Any) -> None:
        conv = _producer(graph, tensor)
        next(a for a in conv.attribute if a.name == "pads").ints[:] = pads

    return _onnx_edit(change)


def onnx_relu_dropped(tensor: str) -> Edit:
    def change(graph: Any) -> None:
        relu = _producer(graph, tensor)
        for node in graph.node:
            node.input[:] = [relu.input[0] if i == relu.output[0] else i for i in node.input]
        graph.node.remove(relu)

    return _onnx_edit(change)


def onnx_flatten_order(tensor: str) -> Edit:
    """A Transpose NCHW -> NHWC inserted before the flatten: the dense layer then reads (H, W, C) order."""
    def change(graph: Any) -> None:
        from onnx import helper

        reshape = _producer(graph, tensor)
        moved = reshape.input[0] + "_nhwc"
        at = list(graph.node).index(reshape)
        graph.node.insert(at, helper.make_node("Transpose", [reshape.input[0]], [moved], perm=[0, 2, 3, 1],
                                               name="fault_transpose"))
        reshape.input[0] = moved

    return _onnx_edit(change)


def onnx_input_normalisation(channels: int) -> Edit:
    def change(graph: Any) -> None:
        from onnx import helper, numpy_helper

        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in NORMALISATION[channels])
        source = graph.input[0].name
        graph.initializer.extend([numpy_helper.from_array(mean, "fault_mean"),
                                  numpy_helper.from_array(std, "fault_std")])
        for node in graph.node:
            node.input[:] = ["fault_normalised" if i == source else i for i in node.input]
        graph.node.insert(0, helper.make_node("Div", ["fault_centred", "fault_std"], ["fault_normalised"]))
        graph.node.insert(0, helper.make_node("Sub", [source, "fault_mean"], ["fault_centred"]))

    return _onnx_edit(change)


def onnx_bn_eps(tensor: str, spec: Any, weights: Mapping[str, np.ndarray], bn: str, eps: float) -> Edit:
    """A folded conv + batch norm refolded as an exporter with batch norm epsilon `eps` would have folded it."""
    def change(graph: Any) -> None:
        conv = _producer(graph, tensor)
        ratio, beta = _bn_ratio(spec, weights, bn, eps)
        _set_initializer(graph, conv.input[1], _get_initializer(graph, conv.input[1]) * ratio.reshape(-1, 1, 1, 1))
        _set_initializer(graph, conv.input[2], (_get_initializer(graph, conv.input[2]) - beta) * ratio + beta)

    return _onnx_edit(change)


def onnx_faults(model: str, label: str, spec: Any, weights: Mapping[str, np.ndarray],
                alignment: Alignment) -> list[tuple[str, str, str, Edit]]:
    """The faults of the benchmark for an ONNX artifact exported by PyTorch (others: none)."""
    if label != "onnx (torch)":
        return []

    def at(layer: str) -> str:
        return operator_entry(alignment, layer).tensor

    channels = spec.input_shape[2]
    if model == "lenet5":
        faults = [("kernel-transposed", "conv2", "layout/transpose", onnx_kernel_transposed(at("conv2"))),
                  ("weights-fp16", "conv1", "quantisation", onnx_weights_fp16(at("conv1"))),
                  ("pad-changed", "conv1", "hyper-parameter", onnx_pads(at("conv1"), [1, 1, 3, 3])),
                  ("relu-dropped", "relu2", "operator semantics", onnx_relu_dropped(at("relu2"))),
                  ("flatten-order", "fc1", "layout/transpose", onnx_flatten_order(at("flatten"))),
                  ("input-normalisation", "conv1", "input preprocessing", onnx_input_normalisation(channels))]
    else:
        faults = [("bn-eps", "s1b1.bn1", "hyper-parameter",
                   onnx_bn_eps(at("s1b1.bn1"), spec, weights, "s1b1.bn1", 1e-3)),
                  ("bn-eps", "s3b1.bn2", "hyper-parameter",
                   onnx_bn_eps(at("s3b1.bn2"), spec, weights, "s3b1.bn2", 1e-2)),
                  ("kernel-transposed", "s2b1.conv1", "layout/transpose", onnx_kernel_transposed(at("s2b1.conv1"))),
                  ("weights-fp16", "s1b2.conv2", "quantisation", onnx_weights_fp16(at("s1b2.conv2"))),
                  ("pad-changed", "s2b2.conv1", "hyper-parameter", onnx_pads(at("s2b2.conv1"), [0, 0, 2, 2])),
                  ("relu-dropped", "s1b2.relu1", "operator semantics", onnx_relu_dropped(at("s1b2.relu1"))),
                  ("input-normalisation", "stem", "input preprocessing", onnx_input_normalisation(channels))]
    return faults


# --- LiteRT (.tflite) ---------------------------------------------------------------------------------------------

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 9: np.int8}


class TFLiteFile:
    """A `.tflite` file as LiteRT's flatbuffer object API holds it (`schema.ModelT`), with the few edits needed."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.schema = schema
        self.model = schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)
        self.sub = self.model.subgraphs[0]
        self.names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def save(self, path: Path) -> Path:
        import flatbuffers

        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        Path(path).write_bytes(bytes(builder.Output()))
        return Path(path)

    def op_name(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return self.names[max(code.builtinCode, code.deprecatedBuiltinCode)]

    def tensor_index(self, name: str) -> int:
        return next(i for i, t in enumerate(self.sub.tensors) if t.name.decode() == name)

    def producer(self, index: int) -> Any:
        return next(op for op in self.sub.operators if index in list(op.outputs))

    def constant_index(self, op: Any, position: int) -> int:
        """The constant behind an operator's input: itself, or a DEQUANTIZE's (float16) input."""
        index = int(op.inputs[position])
        buffer = self.model.buffers[self.sub.tensors[index].buffer]
        if buffer.data is None or len(buffer.data) == 0:
            index = int(self.producer(index).inputs[0])
        return index

    def get(self, index: int) -> np.ndarray:
        tensor = self.sub.tensors[index]
        raw = np.asarray(self.model.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
        return np.frombuffer(raw, dtype=_DTYPES[tensor.type]).reshape([int(d) for d in tensor.shape]).copy()

    def set(self, index: int, value: np.ndarray) -> None:
        tensor = self.sub.tensors[index]
        data = np.ascontiguousarray(value.astype(_DTYPES[tensor.type])).tobytes()
        self.model.buffers[tensor.buffer].data = np.frombuffer(data, dtype=np.uint8)

    def opcode(self, name: str) -> int:
        code = getattr(self.schema.BuiltinOperator, name)
        for i, c in enumerate(self.model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
                return i
        new = self.schema.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode, new.version = code, min(code, 127), 1
        self.model.operatorCodes.append(new)
        return len(self.model.operatorCodes) - 1

    def add_tensor(self, name: str, like: Any | None = None, value: np.ndarray | None = None) -> int:
        tensor = self.schema.TensorT()
        tensor.name, tensor.type = name.encode(), 0
        tensor.shape = np.asarray(like.shape if like is not None else np.shape(value), np.int32)
        if like is not None and like.shapeSignature is not None:
            tensor.shapeSignature = np.asarray(like.shapeSignature, np.int32)
        tensor.buffer = 0
        if value is not None:
            buffer = self.schema.BufferT()
            buffer.data = np.frombuffer(np.asarray(value, np.float32).tobytes(), dtype=np.uint8)
            self.model.buffers.append(buffer)
            tensor.buffer = len(self.model.buffers) - 1
        self.sub.tensors.append(tensor)
        return len(self.sub.tensors) - 1

    def insert_op(self, at: int, name: str, inputs: list[int], output: int) -> None:
        op = self.schema.OperatorT()
        op.opcodeIndex = self.opcode(name)
        op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray([output], np.int32)
        options = {"SUB": "SubOptions", "MUL": "MulOptions"}[name]
        op.builtinOptionsType = getattr(self.schema.BuiltinOptions, options)
        op.builtinOptions = getattr(self.schema, f"{options}T")()
        self.sub.operators.insert(at, op)


def _tflite_edit(change: Callable[[TFLiteFile], None]) -> Edit:
    def edit(source: Path, target: Path) -> Path:
        file = TFLiteFile(source)
        change(file)
        return file.save(target)

    return edit


def _op_at(file: TFLiteFile, tensor: str) -> Any:
    return file.producer(file.tensor_index(tensor))


def tflite_kernel_transposed(tensor: str) -> Edit:
    def change(file: TFLiteFile) -> None:
        index = file.constant_index(_op_at(file, tensor), 1)
        file.set(index, file.get(index).transpose(0, 2, 1, 3))  # (O, kh, kw, I): kh <-> kw

    return _tflite_edit(change)


def tflite_weights_fp16(tensor: str) -> Edit:
    def change(file: TFLiteFile) -> None:
        index = file.constant_index(_op_at(file, tensor), 1)
        file.set(index, file.get(index).astype(np.float16).astype(np.float32))

    return _tflite_edit(change)


def tflite_activation_dropped(tensor: str) -> Edit:
    def change(file: TFLiteFile) -> None:
        _op_at(file, tensor).builtinOptions.fusedActivationFunction = 0  # NONE

    return _tflite_edit(change)


def tflite_flatten_order(tensor: str, hwc: tuple[int, int, int]) -> Edit:
    """The dense layer's columns put in (C, H, W) order while the flatten before it is (H, W, C)."""
    def change(file: TFLiteFile) -> None:
        index = file.constant_index(_op_at(file, tensor), 1)
        w = file.get(index)
        h, wd, c = hwc
        file.set(index, w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2).reshape(len(w), -1))

    return _tflite_edit(change)


def tflite_input_normalisation(channels: int) -> Edit:
    def change(file: TFLiteFile) -> None:
        source = int(file.sub.inputs[0])
        like = file.sub.tensors[source]
        mean, std = (np.asarray(v, np.float32) for v in NORMALISATION[channels])
        centred, normalised = file.add_tensor("fault_centred", like), file.add_tensor("fault_normalised", like)
        for op in file.sub.operators:
            op.inputs = np.asarray([normalised if int(i) == source else int(i) for i in op.inputs], np.int32)
        file.insert_op(0, "MUL", [centred, file.add_tensor("fault_inverse_std", value=1.0 / std)], normalised)
        file.insert_op(0, "SUB", [source, file.add_tensor("fault_mean", value=mean)], centred)

    return _tflite_edit(change)


def tflite_scale(tensor: str, factor: float, weights: bool) -> Edit:
    """An int8 scale multiplied by `factor`: the operator's weight tensor's (per channel, all), or its output's."""
    def change(file: TFLiteFile) -> None:
        op = _op_at(file, tensor)
        index = int(op.inputs[1]) if weights else file.tensor_index(tensor)
        quantisation = file.sub.tensors[index].quantization
        quantisation.scale = (np.asarray(quantisation.scale, np.float32) * np.float32(factor)).astype(np.float32)

    return _tflite_edit(change)


def tflite_bn_eps(tensor: str, spec: Any, weights: Mapping[str, np.ndarray], bn: str, eps: float) -> Edit:
    def change(file: TFLiteFile) -> None:
        op = _op_at(file, tensor)
        ratio, beta = _bn_ratio(spec, weights, bn, eps)
        w_index, b_index = file.constant_index(op, 1), file.constant_index(op, 2)
        file.set(w_index, file.get(w_index).astype(np.float64) * ratio.reshape(-1, 1, 1, 1))
        file.set(b_index, (file.get(b_index).astype(np.float64) - beta) * ratio + beta)

    return _tflite_edit(change)


def tflite_faults(model: str, label: str, spec: Any, weights: Mapping[str, np.ndarray],
                  alignment: Alignment) -> list[tuple[str, str, str, Edit]]:
    """The faults of the benchmark for a `.tflite` artifact of the `keras.tflite` edge, by variant."""
    def at(layer: str) -> str:
        return operator_entry(alignment, layer).tensor

    variant = label.split()[1]
    if model == "lenet5":
        c, h, w = spec.output_shapes()["pool2"]
        common = [("kernel-transposed", "conv2", "layout/transpose", tflite_kernel_transposed(at("conv2"))),
                  ("flatten-order", "fc1", "layout/transpose", tflite_flatten_order(at("fc1"), (h, w, c)))]
        if variant == "int8":
            return [*common,
                    ("int8-scale", "conv2", "quantisation", tflite_scale(at("conv2"), 1.5, weights=True)),
                    ("int8-scale", "fc2", "quantisation", tflite_scale(at("fc2"), 0.6, weights=True)),
                    ("int8-scale", "fc1", "quantisation", tflite_scale(at("fc1"), 0.25, weights=False))]
        float_faults = [("relu-dropped", "relu1", "operator semantics", tflite_activation_dropped(at("relu1"))),
                        ("input-normalisation", "conv1", "input preprocessing",
                         tflite_input_normalisation(spec.input_shape[2]))]
        if variant == "fp32":
            float_faults.append(("weights-fp16", "conv1", "quantisation", tflite_weights_fp16(at("conv1"))))
        return common + float_faults
    if variant == "int8":
        return [("int8-scale", "s2b2.conv2", "quantisation", tflite_scale(at("s2b2.conv2"), 1.5, weights=True))]
    if variant == "fp16":
        return [("kernel-transposed", "s1b3.conv1", "layout/transpose", tflite_kernel_transposed(at("s1b3.conv1"))),
                ("relu-dropped", "s2b1.relu1", "operator semantics", tflite_activation_dropped(at("s2b1.relu1")))]
    return [("bn-eps", "s2b1.bn1", "hyper-parameter", tflite_bn_eps(at("s2b1.bn1"), spec, weights, "s2b1.bn1", 1e-3)),
            ("kernel-transposed", "s3b1.conv2", "layout/transpose", tflite_kernel_transposed(at("s3b1.conv2"))),
            ("relu-dropped", "s1b1.relu1", "operator semantics", tflite_activation_dropped(at("s1b1.relu1"))),
            ("weights-fp16", "s2b2.conv1", "quantisation", tflite_weights_fp16(at("s2b2.conv1")))]


# --- ExecuTorch (.pte) --------------------------------------------------------------------------------------------


def pte_relu_dropped(tensor: str) -> Edit:
    """The ReLU an XNNPACK node computes as its output clamp [0, inf), dropped (the clamp widened to (-inf, inf)):
    `tensor` is the node's output (``xnnpack<d>/<id>``, the fused ReLU's aligned tensor)."""
    from dlcompat.runtimes.pte_program import read_program, write_program

    infinity = int(np.float32(np.inf).view(np.uint32))
    d, vid = (int(part) for part in tensor.removeprefix("xnnpack").split("/"))

    def edit(source: Path, target: Path) -> Path:
        program = read_program(source)
        graph = program.partitions[d].graph
        node = next(n for n in graph["xnodes"] if n["xnode_union"].get("output_id") == vid)
        node["output_min_max"] = {"output_min": infinity | 0x80000000, "output_max": infinity}
        target.write_bytes(write_program(program))
        return target

    return edit


def pte_conv_channel_scaled(tensor: str, factor: float) -> Edit:
    """The first output channel of the XNNPACK convolution / fully connected node whose output is `tensor` scaled by
    `factor` in a float32 program (its filter in the program's named data)."""
    from dlcompat.runtimes.pte_program import read_program

    d, vid = (int(part) for part in tensor.removeprefix("xnnpack").split("/"))

    def edit(source: Path, target: Path) -> Path:
        from executorch.exir._serialize._program import serialize_pte_binary

        program = read_program(source)
        partition = program.partitions[d]
        node = next(n for n in partition.graph["xnodes"] if n["xnode_union"].get("output_id") == vid)
        filter_id = int(node["xnode_union"]["filter_id"])
        index = int(partition.values()[filter_id]["constant_buffer_idx"])
        store = program.pte.named_data
        entry = store.pte_data[partition.graph["constant_data"][index]["named_key"]]
        weights = np.frombuffer(bytes(store.buffers[entry.buffer_index]), np.float32).copy()
        per_channel = len(weights) // int(partition.values()[filter_id]["dims"][0])
        weights[:per_channel] *= np.float32(factor)  # the filter's first output channel (O leads its dims)
        store.buffers[entry.buffer_index] = weights.tobytes()
        target.write_bytes(bytes(serialize_pte_binary(program.pte)))
        return target

    return edit
