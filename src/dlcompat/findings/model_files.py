"""Model files named by a user: their format, their input, which zoo spec they hold and their canonical weights.

A reference file's spec is found structurally: its graph (`findings.graph`) is aligned against each zoo spec built
for the images' shape and the file's number of classes, and the spec whose every layer is accounted for (computed,
fused into its neighbour or folded by the converter), with as many convolution / dense operators as the spec has,
is the file's. Its canonical weights are then read from the file's constants (`findings.parameters`): a batch norm
the converter folded into its convolution is kept folded (the convolution holds the folded kernel, the norm is
the identity carrying the folded bias), which computes the same function. Native files: canonical weights (`.npz`,
as a study's `train` job stores them), PyTorch state dicts (`.pt`) and Keras files (`.keras`), read by their
adapters. Every problem is one sentence (`ModelFileError`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.data.archives import ArchiveTooLarge, check_zip
from dlcompat.errors import ModelFileError, one_line
from dlcompat.findings.align import Alignment, align_graph
from dlcompat.findings.graph import Graph, read_onnx, read_tflite
from dlcompat.findings.parameters import layer_parameters, onnx_constants
from dlcompat.findings.pte_graph import read_pte
from dlcompat.findings.tfjs_graph import read_tfjs
from dlcompat.zoo.spec import BatchNorm, Conv2D, Dense, ModelSpec

#: file suffix -> format (the study's names: a framework's own file is named as the framework)
SUFFIX_FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".pte": "pte", ".npz": "weights", ".pt": "pytorch",
                  ".keras": "tensorflow"}
GRAPH_FORMATS = ("onnx", "tflite", "pte")
#: formats whose graphs `findings.align` aligns: the graph formats, and TF.js graph models (`findings.tfjs_graph`;
#: a derived model only: not a reference file, whose canonical weights are not read from it)
ALIGNED_FORMATS = (*GRAPH_FORMATS, "tfjs")
#: reasons an alignment gives for a layer that is accounted for without its own tensor
_ACCOUNTED = ("fused into", "folded by the converter", "dropout is the identity", "swapped by")


@dataclass
class ModelFile:
    path: Path
    format: str
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    input_layout: str  # NCHW | NHWC: what the file's input takes


def file_format(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: pass a model file (.onnx, .tflite, .pte, .npz, .pt, .keras) "
                             "or a stored artifact id with --out")
    fmt = SUFFIX_FORMATS.get(path.suffix) or (_zip_format(path) if path.suffix == ".zip" else None)
    if fmt is None:
        raise ModelFileError(f"{path}: dlcompat localize reads {', '.join(SUFFIX_FORMATS)} files and .zip archives "
                             f"of a TF.js graph model or a SavedModel, not {path.suffix or 'suffix-less'} ones")
    return fmt


def _zip_format(path: Path) -> str | None:
    """A zip archive's format by what it holds: a TF.js model (`model.json`) or a SavedModel (`saved_model.pb`)."""
    try:
        check_zip(path)
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ArchiveTooLarge) as exc:
        raise ModelFileError(f"{path} is not a readable zip archive ({one_line(exc)})") from exc
    return "tfjs" if "model.json" in names else ("savedmodel" if "saved_model.pb" in names else None)


def read_graph(path: Path, fmt: str, image_shape: tuple[int, int, int]) -> Graph:
    try:
        if fmt == "pte":
            return read_pte(path)
        if fmt == "tfjs":
            return read_tfjs(path)
        return read_onnx(path, image_shape) if fmt == "onnx" else read_tflite(path)
    except Exception as exc:  # onnx / flatbuffers raise many kinds on a foreign or truncated file
        raise ModelFileError(f"{path} is not a readable {fmt} model ({type(exc).__name__}: {one_line(exc)})") from exc


def input_layout(path: Path, fmt: str, image_shape: tuple[int, int, int], layout: str | None) -> str:
    """The layout the file's input takes: `layout` when given; NHWC for LiteRT and native files; for ONNX from the
    input's fixed shape against the images' (H, W, C). One sentence when the images do not fit the input."""
    if fmt == "tflite":
        dims = _tflite_input(path)
        if dims is not None and dims != image_shape:
            raise ModelFileError(f"{path} takes {'x'.join(map(str, dims))} images (H x W x C), the images are "
                                 f"{'x'.join(map(str, image_shape))}")
        return "NHWC"
    if fmt != "onnx":
        return layout or ("NCHW" if fmt == "pte" else "NHWC")
    dims = _onnx_input(path)
    h, w, c = image_shape
    fits = {"NHWC": (h, w, c), "NCHW": (c, h, w)}
    if dims is not None and dims not in fits.values():
        raise ModelFileError(f"{path} takes inputs of shape {dims} per image, the images are {h}x{w}x{c} (H x W x C)")
    if layout is not None:
        return layout
    found = [name for name, shape in fits.items() if shape == dims]
    if len(found) != 1:
        raise ModelFileError(f"{path}: its input's layout cannot be read from its shape {dims}: pass --layout NCHW "
                             "or --layout NHWC")
    return found[0]


def _onnx_input(path: Path) -> tuple[int, ...] | None:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # a foreign or truncated file
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {one_line(exc)})") from exc
    constants = {init.name for init in graph.initializer}
    first = next((i for i in graph.input if i.name not in constants), None)
    if first is None:
        raise ModelFileError(f"{path} is an ONNX model without an input")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in first.type.tensor_type.shape.dim]
    return tuple(dims[1:]) if len(dims) == 4 and min(dims[1:]) > 0 else None


def _tflite_input(path: Path) -> tuple[int, ...] | None:
    try:
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
        sub = model.Subgraphs(0)
        dims = [int(d) for d in np.atleast_1d(sub.Tensors(int(sub.InputsAsNumpy()[0])).ShapeAsNumpy())]
    except Exception as exc:  # flatbuffers raise many kinds on a foreign file
        raise ModelFileError(f"{path} is not a readable tflite model ({type(exc).__name__}: {one_line(exc)})") from exc
    return tuple(dims[1:]) if len(dims) == 4 and min(dims[1:]) > 0 else None


def zoo_specs(image_shape: tuple[int, int, int], classes: list[int]) -> Iterator[ModelSpec]:
    """Every zoo spec that builds for these images and numbers of classes."""
    from dlcompat.zoo.registry import build_spec, model_names

    for n in dict.fromkeys(classes):
        for name in model_names():
            try:
                spec = build_spec(name, image_shape, n)
            except Exception:  # an architecture that does not fit these images is not the file's
                continue
            yield spec


def unaccounted(alignment: Alignment) -> list[str]:
    """The reasons of the layers the alignment neither aligned nor accounted for (fused, folded, dropout)."""
    return [e.reason for e in alignment.layers if e.tensor is None and not e.reason.startswith(_ACCOUNTED)]


def accounts_for(alignment: Alignment, spec: ModelSpec, graph: Graph, every_layer: bool = True) -> bool:
    """Whether the graph computes the spec: each layer (each conv / dense layer, without `every_layer`) aligned or
    accounted for, and as many conv / dense operators as the spec has."""
    weighted = {layer.name for layer in spec.iter_layers() if isinstance(layer, (Conv2D, Dense))}
    for entry in alignment.layers:
        if entry.tensor is None and not entry.reason.startswith(_ACCOUNTED) and \
                (every_layer or entry.layer in weighted):
            return False
    return sum(node.kind in ("conv", "dense") for node in graph.nodes) == len(weighted)


def identify_graph(path: Path, fmt: str, image_shape: tuple[int, int, int]) -> tuple[ModelSpec, Alignment, Graph]:
    """The zoo spec the ONNX / LiteRT file computes, its alignment and its graph."""
    graph = read_graph(path, fmt, image_shape)
    outputs = [node.shape for node in graph.nodes if node.shape is not None and len(node.shape) == 1]
    classes = [outputs[-1][0]] if outputs else []
    for spec in zoo_specs(image_shape, classes):
        alignment = align_graph(graph, spec, str(path))
        if accounts_for(alignment, spec, graph):
            return spec, alignment, graph
    raise ModelFileError(f"{path} computes none of the zoo's architectures on {'x'.join(map(str, image_shape))} "
                         f"images with {classes[0] if classes else 'unknown'} classes: dlcompat localize compares "
                         "models of its zoo")


def graph_weights(path: Path, spec: ModelSpec, alignment: Alignment, graph: Graph) -> dict[str, np.ndarray]:
    """The spec's canonical weights from the file's constants (a folded batch norm kept folded, see above)."""
    layers = {layer.name: layer for layer in spec.iter_layers()}
    shapes = spec.weight_shapes()
    params = layer_parameters(path, alignment, graph.nodes)
    out: dict[str, np.ndarray] = {}
    for entry in alignment.layers:
        group = [layers[name] for name in entry.group]
        main = next((layer for layer in group if isinstance(layer, (Conv2D, Dense))), None)
        found = params.get(entry.layer)
        if main is None or not found:
            continue
        out[f"{main.name}.weight"] = found["weight"].value
        bias = found["bias"].value if "bias" in found else np.zeros(len(found["weight"].value))
        norms = [layer for layer in group if isinstance(layer, BatchNorm)]
        for norm in norms:
            out |= {f"{norm.name}.gamma": np.ones_like(bias), f"{norm.name}.beta": np.zeros_like(bias),
                    f"{norm.name}.mean": np.zeros_like(bias), f"{norm.name}.var": np.full_like(bias, 1 - norm.eps)}
        target = f"{main.name}.bias" if f"{main.name}.bias" in shapes else (f"{norms[0].name}.beta" if norms else "")
        if target:
            out[target] = bias
        elif np.any(bias != 0):
            raise ModelFileError(f"{path}: {main.name} adds a bias the {spec.name} spec does not have")
    out |= _onnx_norms(path, alignment, graph, layers) if graph.format == "onnx" else {}
    return _complete(out, spec, path)


def _onnx_norms(path: Path, alignment: Alignment, graph: Graph, layers: dict[str, Any]) -> dict[str, np.ndarray]:
    """The parameters of batch norms an ONNX file computes with its own BatchNormalization operator."""
    constants = onnx_constants(path)
    out = {}
    for entry in alignment.layers:
        node = graph.producer(entry.tensor) if entry.tensor else None
        if node is None or node.op != "BatchNormalization" or not isinstance(layers[entry.layer], BatchNorm):
            continue
        names = node.operands[1:5]
        if all(n in constants for n in names):
            for key, name in zip(("gamma", "beta", "mean", "var"), names, strict=True):
                out[f"{entry.layer}.{key}"] = constants[name].value
    return out


def _complete(weights: dict[str, np.ndarray], spec: ModelSpec, path: Path) -> dict[str, np.ndarray]:
    shapes = spec.weight_shapes()
    missing = [name for name in shapes if name not in weights or tuple(weights[name].shape) != shapes[name]]
    if missing:
        raise ModelFileError(f"{path}: the {spec.name} weights {', '.join(missing[:3])} cannot be read from the file "
                             "in the spec's shapes: it cannot serve as the reference")
    return {name: np.asarray(weights[name], dtype=np.float32) for name in shapes}


def native_weights(path: Path, fmt: str, image_shape: tuple[int, int, int]) -> tuple[ModelSpec, dict[str, Any]]:
    """(spec, canonical weights) of a native file: canonical weights `.npz`, a `.pt` state dict, a `.keras` file."""
    if fmt == "weights":
        from dlcompat.data.archives import check_zip

        try:
            check_zip(path)
            with np.load(path, allow_pickle=False) as npz:
                weights = {name: npz[name] for name in npz.files}
        except Exception as exc:  # NumPy and zipfile raise many kinds on a foreign, corrupt or pickled file
            raise ModelFileError(f"{path} is not a canonical weights file ({type(exc).__name__}: "
                                 f"{one_line(exc)})") from exc
        classes = sorted({int(v.shape[0]) for v in weights.values() if v.ndim == 1})
        for spec in zoo_specs(image_shape, classes):
            if {k: tuple(v.shape) for k, v in weights.items()} == spec.weight_shapes():
                return spec, weights
        h, w, channels = image_shape
        for other in {1, 3} - {channels}:  # the right architecture for images of another channel count
            for spec in zoo_specs((h, w, other), classes):
                if {k: tuple(v.shape) for k, v in weights.items()} == spec.weight_shapes():
                    raise ModelFileError(f"the images have {channels} channel(s) and {path} ({spec.name}) takes "
                                         f"{other}: pass images of {h}x{w}x{other}")
        raise ModelFileError(f"{path} holds no zoo architecture's canonical weights for "
                             f"{'x'.join(map(str, image_shape))} images")
    return _framework_weights(path, fmt, image_shape)


def _framework_weights(path: Path, fmt: str, image_shape: tuple[int, int, int]) -> tuple[ModelSpec, dict[str, Any]]:
    from dlcompat.frameworks.registry import make_adapter

    adapter = make_adapter(fmt, threads=1)
    for spec in zoo_specs(image_shape, _native_classes(path, fmt)):
        try:
            model = adapter.load(spec, path)
        except ModelFileError:
            continue
        return spec, adapter.get_weights(model)
    raise ModelFileError(f"{path} is no zoo architecture's {fmt} model for {'x'.join(map(str, image_shape))} "
                         "images (or not a file dlcompat wrote)")


def _native_classes(path: Path, fmt: str) -> list[int]:
    """The number of classes a native file's last layer has: a state dict's last tensor, a Keras file's last
    `units` (its config.json, read as JSON)."""
    try:
        if fmt == "pytorch":
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
            return [int(list(state.values())[-1].shape[0])]
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode()
        units = [int(v) for v in _find_units(json.loads(text))]
        return units[-1:]
    except Exception as exc:  # torch / zipfile raise many kinds on a foreign or pickled file
        raise ModelFileError(f"{path} is not a {fmt} model file dlcompat can read ({type(exc).__name__}: "
                             f"{one_line(exc)})") from exc


def _find_units(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        if "units" in node and isinstance(node["units"], int):
            yield node["units"]
        for value in node.values():
            yield from _find_units(value)
    elif isinstance(node, list):
        for value in node:
            yield from _find_units(value)


def read_reference(path: Path, image_shape: tuple[int, int, int], layout: str | None = None) -> ModelFile:
    """The reference model of a file: its format, spec, canonical weights and input layout."""
    fmt = file_format(path)
    if fmt in ("pte", "tfjs", "savedmodel"):
        what = {"pte": "an ExecuTorch program's", "tfjs": "a TF.js model's", "savedmodel": "a SavedModel's"}[fmt]
        raise ModelFileError(f"{path}: {what} weights are not read back as a reference: pass the model it was "
                             "converted from as the reference")
    if fmt in GRAPH_FORMATS:
        layout = input_layout(path, fmt, image_shape, layout or "NCHW")  # checks the images fit; never run
        spec, alignment, graph = identify_graph(path, fmt, image_shape)
        return ModelFile(Path(path), fmt, spec, graph_weights(path, spec, alignment, graph), layout)
    spec, weights = native_weights(path, fmt, image_shape)
    return ModelFile(Path(path), fmt, spec, weights, "NHWC")
