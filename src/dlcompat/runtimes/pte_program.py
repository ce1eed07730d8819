"""An ExecuTorch `.pte` program read as data, and its *tapped copy*: the same program whose chosen tensors are extra
outputs of the method (how `ExecuTorchRunner.intermediates` hands back the tensors between input and output).

A program is a list of instructions over numbered values (`executorch.exir.schema`): kernel calls (the portable
kernels: ``aten::convolution.out``) and delegate calls. An XNNPACK delegate call runs a partition whose own graph
(`XNNGraph`, a flatbuffer after the XNNPACK header in the delegate's blob) lists its nodes (``XNNConv2d``,
``XNNFullyConnected``, ...) and values (with the int8 quantisation of each quantised tensor). Both are read here:
the program by ExecuTorch's own reader (`deserialize_pte_binary`), the partition graph by the `flatc` ExecuTorch
ships, with the XNNPACK schema's floats read as their 32-bit patterns (so scales and clamps stay exact; flatc's
JSON writes floats to 6 digits, which would change an int8 program's requantisation).

Tensor names: ``v<i>`` is the program's value i; ``xnnpack<d>/<id>`` is value id of the d-th delegate's XNNPACK
graph. A tapped copy changes nothing the deployed program computes: a tapped program value gets memory of its own
(nothing reuses it) and becomes a method output; a tapped XNNPACK value is copied (float) or converted to float32
(int8: XNNPACK's own dequantisation) by one added node into a new external output of its partition. The partition
keeps its nodes, weights and quantisation parameters, and the copy's logits equal the deployed program's
(`tests/runtimes/test_pte_intermediates.py` checks it bit for bit).
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: XNNPACK's value flags: an external input / output of the partition
XNN_EXTERNAL_INPUT, XNN_EXTERNAL_OUTPUT = 1, 2
#: bytes per element of the program's scalar types (ExecuTorch's ScalarType codes)
_ITEM_SIZE = {0: 1, 1: 1, 2: 2, 3: 4, 4: 8, 5: 2, 6: 4, 7: 8, 11: 1, 15: 2}


@dataclass
class XnnPartition:
    """One XNNPACK delegate: its graph (the flatbuffer's JSON, floats as bit patterns) and the rest of its blob."""

    index: int  # the delegate's index in the execution plan
    graph: dict[str, Any]
    constant_data: bytes
    inputs: list[int] = field(default_factory=list)  # program values the delegate call reads, in order
    outputs: list[int] = field(default_factory=list)  # program values it writes

    def values(self) -> dict[int, dict[str, Any]]:
        """XNNPACK value id -> its tensor value (a quantised one's `tensor_value`, with `quant` beside)."""
        out = {}
        for value in self.graph.get("xvalues", []):
            union = value["xvalue_union"]
            tensor = dict(union.get("tensor_value", union))
            if value["xvalue_union_type"] == "XNNQuantizedTensorValue":
                tensor["quant"] = {"type": union.get("quant_params_type"), **(union.get("quant_params") or {})}
            out[int(tensor["id_out"])] = tensor
        return out


@dataclass
class PteProgram:
    """A `.pte` file's `forward` plan, its instructions and its XNNPACK partitions (None: another backend's)."""

    pte: Any  # executorch.exir._serialize._program.PTEFile
    partitions: list[XnnPartition | None]

    @property
    def plan(self) -> Any:
        return self.pte.program.execution_plan[0]

    def instructions(self) -> list[Any]:
        return [i.instr_args for chain in self.plan.chains for i in chain.instructions]

    def operator(self, index: int) -> str:
        op = self.plan.operators[index]
        return f"{op.name}.{op.overload}" if op.overload else op.name

    def delegate_ids(self) -> list[str]:
        return [d.id for d in self.plan.delegates]


def as_float(bits: Any) -> float:
    """A float field of the XNNPACK graph (read as its 32-bit pattern) as a number."""
    return float(struct.unpack("<f", struct.pack("<I", int(bits) & 0xFFFFFFFF))[0])


def read_program(path: Path) -> PteProgram:
    """The program of the `.pte` file at `path` (ExecuTorch's reader; each XNNPACK partition's graph decoded)."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall

    pte = deserialize_pte_binary(Path(path).read_bytes())
    plan = pte.program.execution_plan[0]
    calls = {c.delegate_index: c for chain in plan.chains for c in (i.instr_args for i in chain.instructions)
             if isinstance(c, DelegateCall)}
    partitions: list[XnnPartition | None] = []
    for index, delegate in enumerate(plan.delegates):
        if delegate.id != "XnnpackBackend":
            partitions.append(None)
            continue
        blob = bytes(pte.program.backend_delegate_data[delegate.processed.index].data)
        graph, constants = _decode_blob(blob)
        args = list(calls[index].args) if index in calls else []
        n_in = len(graph.get("input_ids", []))
        partitions.append(XnnPartition(index, graph, constants, args[:n_in], args[n_in:]))
    return PteProgram(pte, partitions)


def write_program(program: PteProgram) -> bytes:
    """The `.pte` bytes of `program` with each XNNPACK partition's graph as it is now (edited in place)."""
    from executorch.exir._serialize._program import serialize_pte_binary

    data = program.pte.program.backend_delegate_data
    for partition in program.partitions:
        if partition is not None:
            delegate = program.plan.delegates[partition.index]
            data[delegate.processed.index].data = _encode_blob(partition.graph, partition.constant_data)
    return bytes(serialize_pte_binary(program.pte))


def tapped_program(path: Path, names: list[str]) -> tuple[bytes, list[str]]:
    """The `.pte` bytes of a copy of the program whose method outputs are its own, then the tensors `names` (program
    values ``v<i>`` and XNNPACK values ``xnnpack<d>/<id>``), as float32 where XNNPACK holds them quantised; and the
    names in the order the extra outputs follow the method's own."""
    from executorch.exir._serialize._program import serialize_pte_binary

    program = read_program(path)
    plan, order = program.plan, []
    by_partition: dict[int, list[int]] = {}
    for name in names:
        if name.startswith("xnnpack"):
            d, vid = name.removeprefix("xnnpack").split("/")
            by_partition.setdefault(int(d), []).append(int(vid))
    for d, ids in by_partition.items():
        partition = program.partitions[d]
        if partition is None:
            raise KeyError(f"delegate {d} is no XNNPACK partition")
        for vid, value in zip(ids, _expose(program, partition, ids), strict=True):
            order.append((f"xnnpack{d}/{vid}", value))
    views = _views(program)
    for name in names:
        if name.startswith("v"):
            index = int(name[1:])
            if index in views:  # a view reads its source's memory: the source gets memory of its own
                _own_memory(plan, views[index])
            order.append((name, _own_memory(plan, index)))
    for _, value in order:
        plan.outputs.append(value)
    return bytes(serialize_pte_binary(program.pte)), [name for name, _ in order]


def computed_tensors(program: PteProgram) -> list[str]:
    """The tensors the program computes per image, in execution order: the outputs of its kernel calls and delegate
    calls (program values ``v<i>``) and, inside each XNNPACK partition, its nodes' outputs (``xnnpack<d>/<id>``)."""
    from executorch.exir.schema import DelegateCall, KernelCall

    plan, out = program.plan, []
    batch = plan.values[plan.inputs[0]].val.sizes[0]
    for call in program.instructions():
        if isinstance(call, DelegateCall):
            partition = program.partitions[call.delegate_index]
            if partition is not None:
                externals = set(partition.graph.get("output_ids", []))
                out += [f"xnnpack{partition.index}/{node['xnode_union']['output_id']}"
                        for node in partition.graph.get("xnodes", [])
                        if "output_id" in node["xnode_union"] and node["xnode_union"]["output_id"] not in externals]
            out += [f"v{i}" for i in (partition.outputs if partition is not None else call.args)
                    if _per_image(plan.values[i].val, batch) and i not in plan.inputs]
        elif isinstance(call, KernelCall):
            out += [f"v{i}" for i in call.args if _per_image(plan.values[i].val, batch) and i not in plan.inputs]
    return list(dict.fromkeys(out))


def _per_image(value: Any, batch: int) -> bool:
    """A computed tensor (not a weight) whose leading dimension is the input's (bound): one row per image."""
    from executorch.exir.schema import Tensor

    return isinstance(value, Tensor) and not is_constant(value) and bool(value.sizes) and value.sizes[0] == batch


@dataclass(frozen=True)
class OutputQuantisation:
    """The int8 quantisation of the tensor an XNNPACK partition dequantises into the method's output."""

    scale: float
    zero_point: int


def output_quantisation(program: PteProgram) -> OutputQuantisation | None:
    """Where the method's output is an XNNPACK Convert of a per-tensor int8 tensor: that tensor's quantisation."""
    output = program.plan.outputs[0]
    for partition in program.partitions:
        if partition is None or output not in partition.outputs:
            continue
        xnn = partition.graph["output_ids"][partition.outputs.index(output)]
        values = partition.values()
        node = next((n for n in partition.graph.get("xnodes", []) if n["xnode_union"].get("output_id") == xnn), None)
        source = values.get(node["xnode_union"].get("input_id", -1)) if node is not None else None
        if node is None or node["xnode_union_type"] != "XNNConvert" or source is None or "quant" not in source:
            return None
        quant = source["quant"]
        if quant.get("type") != "PerTensorQuant":
            return None
        return OutputQuantisation(as_float(quant["scale"]), int(quant.get("zero_point", 0)))
    return None


#: XNNPACK constant datatypes -> how their bytes are read
_XNN_DTYPES = {"xnn_datatype_fp32": np.float32, "xnn_datatype_fp16": np.float16, "xnn_datatype_qcint8": np.int8,
               "xnn_datatype_qint8": np.int8, "xnn_datatype_qcint32": np.int32, "xnn_datatype_qint32": np.int32}


def partition_constant(program: PteProgram, partition: XnnPartition,
                       vid: int) -> tuple[np.ndarray, str, list[float] | None] | None:
    """An XNNPACK constant value as the node uses it (float64; an integer one dequantised with its scales, per
    channel along its `channel_dim`), its stored datatype and its scales (None for a float one); None for a computed
    value or one not read here."""
    value = partition.values().get(vid)
    if value is None or int(value.get("constant_buffer_idx", 0)) == 0 or value["datatype"] not in _XNN_DTYPES:
        return None
    raw = _constant_bytes(program, partition, int(value["constant_buffer_idx"]))
    dims = [int(d) for d in value["dims"]]
    data = np.frombuffer(raw, dtype=_XNN_DTYPES[value["datatype"]])[: int(np.prod(dims))].reshape(dims)
    data = data.astype(np.float64)
    quant, scales = value.get("quant"), None
    if quant and quant.get("type") == "PerChannelQuant":
        axis = int(quant.get("channel_dim", 0))
        raw_scales = _constant_bytes(program, partition, int(quant["scale_buffer_idx"]))
        scales = np.frombuffer(raw_scales, np.float32)[: dims[axis]].astype(np.float64)
        shape = [1] * len(dims)
        shape[axis] = dims[axis]
        data = data * scales.reshape(shape)
    elif quant and quant.get("type") == "PerTensorQuant":
        scales = np.array([as_float(quant["scale"])])
        data = (data - int(quant.get("zero_point", 0))) * scales[0]
    return data, value["datatype"].removeprefix("xnn_datatype_"), None if scales is None else scales.tolist()


def _constant_bytes(program: PteProgram, partition: XnnPartition, index: int) -> bytes:
    """Constant `index` of a partition: in the blob after its graph, or in the program's named data."""
    entry = partition.graph["constant_data"][index]
    key = entry.get("named_key") or ""
    if key:
        store = program.pte.named_data
        buffer = store.buffers[store.pte_data[key].buffer_index]
        return bytes(getattr(buffer, "buffer", buffer))
    offset, size = int(entry["offset"]), int(entry["size"])
    return partition.constant_data[offset : offset + size]


def is_constant(tensor: Any) -> bool:
    """A tensor the program stores (weights): its data is in the file, not planned memory."""
    extra = getattr(tensor, "extra_tensor_info", None)
    return tensor.data_buffer_idx > 0 or bool(extra is not None and getattr(extra, "fully_qualified_name", None))


def _views(program: PteProgram) -> dict[int, int]:
    """{view value: the value it reads} for the program's view kernels (no memory of their own)."""
    from executorch.exir.schema import KernelCall

    out = {}
    for call in program.instructions():
        if isinstance(call, KernelCall) and "view" in program.operator(call.op_index) and len(call.args) >= 2:
            out[call.args[-1]] = call.args[0]
    return out


# ---------------------------------------------------------------------------------------------- XNNPACK graph


def _schema() -> str:
    """The XNNPACK flatbuffer schema with every float field read as an unsigned 32-bit integer (same bytes)."""
    from importlib import resources

    import executorch.backends.xnnpack.serialization as serialization

    text = resources.files(serialization).joinpath("schema.fbs").read_text()
    return re.sub(r"(:\s*\[?)float\b", r"\1uint", text)


def _decode_blob(blob: bytes) -> tuple[dict[str, Any], bytes]:
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
    payload = blob[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    constants = blob[header.constant_data_offset : header.constant_data_offset + header.constant_data_size]
    with tempfile.TemporaryDirectory() as tmp:
        schema, data = Path(tmp, "schema.fbs"), Path(tmp, "graph.bin")
        schema.write_text(_schema())
        data.write_bytes(payload)
        _flatc_decompile(tmp, str(schema), str(data), ["--raw-binary", "--strict-json"])
        graph = json.loads(Path(tmp, "graph.json").read_text())
    return graph, constants


def _encode_blob(graph: dict[str, Any], constants: bytes) -> bytes:
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _flatc_compile

    with tempfile.TemporaryDirectory() as tmp:
        schema, data = Path(tmp, "schema.fbs"), Path(tmp, "graph.json")
        schema.write_text(_schema())
        data.write_text(json.dumps(graph))
        _flatc_compile(tmp, str(schema), str(data))
        payload = Path(tmp, "graph.bin").read_bytes()
    head, body = _aligned(XNNHeader.EXPECTED_LENGTH), _aligned(len(payload))
    header = XNNHeader(head, len(payload), head + body, len(constants)).to_bytes()
    return header.ljust(head, b"\0") + payload.ljust(body, b"\0") + constants


def _aligned(size: int, alignment: int = 16) -> int:
    return (size + alignment - 1) // alignment * alignment


def _expose(program: PteProgram, partition: XnnPartition, ids: list[int]) -> list[int]:
    """Make XNNPACK values `ids` external float32 outputs of `partition` (a Copy, or a Convert for a quantised value,
    into a new value); returns the program values that receive them."""
    from executorch.exir.schema import DelegateCall

    graph, values = partition.graph, partition.values()
    call = next(c for c in program.instructions() if isinstance(c, DelegateCall)
                and c.delegate_index == partition.index)
    template = program.plan.values[partition.outputs[0]].val
    out = []
    for vid in ids:
        if vid not in values:
            raise KeyError(f"xnnpack{partition.index}/{vid}: no such XNNPACK value")
        source = values[vid]
        new = max(values) + 1
        extern = int(graph["num_externs"])
        graph["num_externs"] = extern + 1
        tensor = {"datatype": "xnn_datatype_fp32", "num_dims": source["num_dims"], "dims": source["dims"],
                  "constant_buffer_idx": 0, "external_id": extern, "flags": XNN_EXTERNAL_OUTPUT, "id_out": new}
        graph["xvalues"].append({"xvalue_union_type": "XNNTensorValue", "xvalue_union": tensor})
        values[new] = tensor
        kind = "XNNConvert" if "quant" in source else "XNNCopy"
        graph["xnodes"].append({"xnode_union_type": kind, "xnode_union": {"input_id": vid, "output_id": new,
                                                                          "flags": 0}})
        graph["output_ids"].append(new)
        program.plan.values.append(_new_tensor(program.plan, template, [int(d) for d in source["dims"]], 4))
        call.args.append(len(program.plan.values) - 1)
        out.append(len(program.plan.values) - 1)
    data = program.pte.program.backend_delegate_data
    data[program.plan.delegates[partition.index].processed.index].data = _encode_blob(graph, partition.constant_data)
    return out


def _new_tensor(plan: Any, template: Any, sizes: list[int], item: int) -> Any:
    """A float32 tensor value like `template` (a planned, bounded-dynamic one) with `sizes` and memory of its own."""
    from executorch.exir.schema import EValue, ScalarType

    return EValue(dataclasses.replace(template, sizes=sizes, dim_order=list(range(len(sizes))),
                                      scalar_type=ScalarType.FLOAT,
                                      allocation_info=_allocate(plan, int(np.prod(sizes)) * item)))


def _allocate(plan: Any, size: int) -> Any:
    """Fresh memory at the end of the plan's first non-constant buffer (nothing else is planned there)."""
    from executorch.exir.schema import AllocationDetails

    offset = _aligned(plan.non_const_buffer_sizes[1])
    plan.non_const_buffer_sizes[1] = offset + size
    return AllocationDetails(memory_id=1, memory_offset_low=offset & 0xFFFFFFFF, memory_offset_high=offset >> 32)


def _own_memory(plan: Any, index: int) -> int:
    """Program value `index`, moved to memory of its own (a planned tensor whose memory a later one may reuse)."""
    if not 0 <= index < len(plan.values):
        raise KeyError(f"v{index}: the program has {len(plan.values)} values")
    tensor = plan.values[index].val
    info = getattr(tensor, "allocation_info", None)
    if info is not None:
        size = int(np.prod(tensor.sizes)) * _ITEM_SIZE.get(int(tensor.scalar_type), 8)
        plan.values[index].val = dataclasses.replace(tensor, allocation_info=_allocate(plan, size))
    return index
