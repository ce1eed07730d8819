"""An ExecuTorch program's parameters per aligned layer, in the canonical layout (as `findings.parameters` reads ONNX
and LiteRT files): the weight and bias of each XNNPACK convolution / fully connected node, read from the partition's
constants (the program's named data, or the blob after its graph), an int8 one dequantised with its per-channel
scales. The portable kernels' constants are not read.
"""

from __future__ import annotations

from pathlib import Path

from dlcompat.findings.align import Alignment
from dlcompat.findings.graph import GraphNode
from dlcompat.findings.parameters import Constant, artifact_parameters, operator_of
from dlcompat.runtimes.pte_program import partition_constant, read_program


def pte_parameters(path: Path, alignment: Alignment, nodes: list[GraphNode]) -> dict[str, dict[str, Constant]]:
    """{aligned layer: the weight and bias of its XNNPACK convolution / fully connected node, canonical layout} (an
    int8 weight dequantised with its per-channel scales); the portable kernels' constants are not read."""
    constants = pte_constants(path)
    by_output = {n.output: n for n in nodes}
    out = {}
    for entry in alignment.layers:
        found = by_output.get(entry.tensor or "")
        node = operator_of(found, by_output) if found is not None and not entry.passthrough else None
        if node is not None and node.kind in ("conv", "dense") and node.op.startswith("XNN"):
            out[entry.layer] = artifact_parameters(node, constants, "pte", {}, None)
    return out


def pte_constants(path: Path) -> dict[str, Constant]:
    """The XNNPACK partitions' constants by name, convolution filters brought to (O, I, kh, kw): XNNPACK stores a
    convolution's filter (O, kh, kw, I), a one-input-channel depthwise one (1, kh, kw, O), a fully connected's
    (units, in) like the spec."""
    program = read_program(Path(path))
    out = {}
    for partition in program.partitions:
        if partition is None:
            continue
        for node in partition.graph.get("xnodes", []):
            fields = node["xnode_union"]
            for key in ("filter_id", "bias_id"):
                if key not in fields:
                    continue
                found = partition_constant(program, partition, int(fields[key]))
                if found is None:
                    continue
                value, stored, scales = found
                quantisation = {"scale": scales, "zero_point": [0] * len(scales)} if scales else None
                if key == "filter_id" and node["xnode_union_type"] == "XNNConv2d":
                    value = value.transpose(0, 3, 1, 2)
                elif key == "filter_id" and node["xnode_union_type"] == "XNNDepthwiseConv2d":
                    value = value.transpose(3, 0, 1, 2)
                name = f"xnnpack{partition.index}/{int(fields[key])}"
                out[name] = Constant(value, _STORED.get(stored, stored), quantisation)
    return out


#: XNNPACK datatypes as the diagnosis names storage
_STORED = {"fp32": "float32", "fp16": "float16", "qcint8": "int8", "qint8": "int8", "qcint32": "int32",
           "qint32": "int32"}
