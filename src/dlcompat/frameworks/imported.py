"""A model file dlcompat did not train: what it is, what it takes and gives, and its loaders.

`inspect_model` reads a user's `.onnx`, `.tflite`, `.keras`, `torch.export` archive (`.pt2`) or TorchScript file
and says what `dlcompat check` needs: the study's format name, one image input of rank 4 (its layout and
(H, W, C)), one output (N, classes), whether the batch is dynamic, and facts about the file (opset, producer,
parameter count, ...). The layout is read from the model where it says: a Keras or LiteRT model is NHWC (a
Keras model with ``channels_first`` layers is treated as one that cannot say); for ONNX and PyTorch it is the
axis of size 1 or 3 among axes 1 and 3, when exactly one qualifies; else the `layout` argument decides, and
without one the answer is a sentence asking for ``--layout NCHW|NHWC``, never a silent guess. A `layout` that
contradicts what the model says is refused too.

Nothing in a file runs or is unpickled before it is vetted, and every problem is one `ModelFileError` sentence
that says what to do:
- a zip (`.keras`, `.pt2`, TorchScript) is checked for zip bombs (`dlcompat.data.archives.check_zip`) and its
  members' checksums before a loader touches it;
- ONNX: `onnx.load` and `onnx.checker`; LiteRT: the flatbuffer identifier ``TFL3`` and an `ai_edge_litert`
  interpreter that allocates its tensors;
- a pickle (`.pt`, `.pth`, `.pkl`, `.bin`, ... incl. a `torch.save` zip) is refused, never unpickled, with the
  line that exports a `.pt2` instead;
- a `.keras` whose `config.json` names a `Lambda` layer, a Python function or any object outside Keras
  (a custom or registered layer) is refused naming it, before Keras reads it; it then loads with
  ``safe_mode=True`` (dlcompat's converters run in other environments, which do not have the user's code);
- a `.pt2` is vetted by `dlcompat.frameworks.pt2_archive.vet_pt2` (torch.export.load unpickles and evaluates
  parts of an archive) and then read by `torch.export.load`;
- a TorchScript file (a zip with ``code/`` and ``constants.pkl``, under any of the PyTorch suffixes) is read by
  `torch.jit.load`, whose unpickler is TorchScript's own: it rebuilds only tensors and the TorchScript classes
  compiled from the archive's ``code/``, never an arbitrary Python object, and runs no Python from the file.
  A TorchScript file does not record its input's size: `inspect_model` takes it from `shape` (the images'),
  and reads the layout by running the module on zeros in each layout (exactly one must run).

onnx, keras, torch and ai_edge_litert are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcompat.data.archives import ArchiveTooLarge, check_zip
from dlcompat.errors import ModelFileError, one_line
from dlcompat.frameworks.pt2_archive import EXPORT_HINT, vet_pt2

#: suffix -> (the study's format name, kind) of the files read by their suffix
SUFFIXES = {".onnx": ("onnx", "onnx"), ".tflite": ("tflite", "tflite"), ".keras": ("tensorflow", "keras"),
            ".pt2": ("pytorch", "torch.export")}
#: suffixes of PyTorch files: a TorchScript archive is read, anything else under them is a pickle (refused)
TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".ptl", ".jit", ".bin", ".pkl", ".pickle", ".ckpt")
LAYOUTS = ("NCHW", "NHWC")
#: default graph / model names that say nothing: the file's stem names the model instead
_GENERIC_NAME = re.compile(r"|main_graph|torch[-_]jit(-export)?|tf2onnx|graph|(functional|sequential|model)(_\d+)?")
_FIXES = "export it again with the framework's own exporter"

Dims = tuple[int | None, ...]


@dataclass(frozen=True)
class ImportedModel:
    """What `inspect_model` read from a user's model file: enough to plan `dlcompat check`'s jobs."""

    path: Path
    format: str  # the study's format name: "onnx" | "tflite" | "tensorflow" (a .keras file) | "pytorch"
    kind: str  # "onnx" | "tflite" | "keras" | "torch.export" (.pt2) | "torchscript"
    name: str  # a short model name for cells and reports: the Keras / ONNX graph name, else the file stem
    input_layout: str  # "NCHW" | "NHWC"
    input_shape: tuple[int, int, int]  # (H, W, C) of one image
    num_classes: int  # size of the (single) output's last axis
    dynamic_batch: bool
    facts: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    layout_from: str = "model"  # "model" (read from it), "argument" (the `layout` given) or "probe" (TorchScript)


def inspect_model(path: Path, layout: str | None = None,
                  shape: tuple[int, int, int] | None = None) -> ImportedModel:
    """What the model file at `path` is and takes; `layout` only where the model cannot say, `shape` (H, W, C)
    only for a TorchScript file (which does not record its input's size)."""
    path = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise ModelFileError(f"--layout {layout} is neither NCHW nor NHWC: pass --layout NCHW or --layout NHWC")
    fmt, kind = file_kind(path)
    reader = {"onnx": _inspect_onnx, "tflite": _inspect_tflite, "keras": _inspect_keras,
              "torch.export": _inspect_pt2}.get(kind)
    found = _inspect_torchscript(path, layout, shape) if reader is None else reader(path, layout)
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return ImportedModel(path=path, format=fmt, kind=kind, sha256=digest, **found)


def file_kind(path: Path) -> tuple[str, str]:
    """(format, kind) of the model file at `path`; one sentence for a missing, empty, foreign or pickled file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ModelFileError(f"{path} {what}: pass a model file (.onnx, .keras, .tflite, .pt2 or TorchScript)")
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({one_line(exc)}): make it readable") from exc
    if size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes): save or export the model again")
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix in TORCH_SUFFIXES:
        if _is_torchscript(path):
            return "pytorch", "torchscript"
        with path.open("rb") as handle:
            head = handle.read(4)
        if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
            raise ModelFileError(f"{path} is a truncated or corrupt zip archive (no central directory): save or "
                                 f"export the model again ({EXPORT_HINT})")
        if head[:1] == b"\x80" or head == b"PK\x03\x04":  # a pickle's PROTO opcode, or torch.save's zip
            raise ModelFileError(f"{path} is a Python pickle (torch.save or pickle.dump), which dlcompat never "
                                 f"unpickles: {EXPORT_HINT} and pass the .pt2")
        raise ModelFileError(f"{path} is not a TorchScript archive, and dlcompat reads no other PyTorch file (it "
                             f"never unpickles one): {EXPORT_HINT} and pass the .pt2")
    raise ModelFileError(f"{path}: dlcompat reads .onnx, .keras, .tflite, .pt2 and TorchScript (.pt) model files, "
                         f"not {suffix or 'suffix-less'} ones: export the model to one of them")


def _is_torchscript(path: Path) -> bool:
    """A zip laid out as torch.jit.save writes it: one root folder holding code/ and constants.pkl."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1:
        return False
    root = roots.pop()
    return f"{root}/constants.pkl" in names and any(name.startswith(f"{root}/code/") for name in names)


def _check_archive(path: Path, what: str) -> None:
    """A zip bomb or a corrupt (truncated) zip is refused before a loader unpacks it."""
    try:
        check_zip(path)
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except ArchiveTooLarge as exc:
        raise ModelFileError(f"{path} is refused: {exc}: pass a model file below that size") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} is not a readable {what} (a zip archive; truncated or corrupt: "
                             f"{one_line(exc)}): {_FIXES}") from exc
    if bad is not None:
        raise ModelFileError(f"{path} is a corrupt {what} (member {bad} fails its checksum): {_FIXES}")


def _short_name(name: str, path: Path) -> str:
    """A model name for cells and reports: `name` unless empty or generic, else the file stem; safe characters."""
    chosen = path.stem if _GENERIC_NAME.fullmatch(name or "") else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", chosen).strip("-")[:48] or "model"


# --- the signature: one image input, one (N, classes) output ---------------------------------------------------
def _shape_text(dims: Dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _layout_of(path: Path, dims: Dims, layout: str | None, says: str | None) -> tuple[str, str]:
    """(layout, where it came from): what the model says (`says`, else its shape), else `layout`, else a sentence."""
    read = says
    if read is None:
        candidates = [name for name, axis in (("NCHW", 1), ("NHWC", 3)) if dims[axis] in (1, 3)]
        read = candidates[0] if len(candidates) == 1 else None
    if read is not None and layout is not None and read != layout:
        raise ModelFileError(f"{path} takes {read} input of shape {_shape_text(dims)}, not {layout}: "
                             f"drop --layout {layout}")
    if read is not None:
        return read, "model"
    if layout is not None:
        return layout, "argument"
    raise ModelFileError(f"{path}: its input's layout cannot be read from its shape {_shape_text(dims)}: "
                         "pass --layout NCHW or --layout NHWC")


def _signature(path: Path, inputs: list[Dims], outputs: list[Dims], layout: str | None,
               says: str | None = None) -> dict[str, Any]:
    """The ImportedModel fields of the model's input and output, each problem one sentence."""
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(f"{path} has {len(inputs)} input(s) and {len(outputs)} output(s): dlcompat checks "
                             "image classifiers with one image input and one (N, classes) output; export just those")
    dims, out = inputs[0], outputs[0]
    if len(dims) != 4:
        raise ModelFileError(f"{path}'s input has shape {_shape_text(dims)}, not an image batch of four axes "
                             "(N, H, W, C or N, C, H, W): export the model for image batches")
    if len(out) != 2 or out[1] is None or out[1] < 1:
        raise ModelFileError(f"{path}'s output has shape {_shape_text(out)}, not (N, classes): export the model "
                             "with its classifier's logits or probabilities as its only output")
    chosen, source = _layout_of(path, dims, layout, says)
    hwc = (dims[1], dims[2], dims[3]) if chosen == "NHWC" else (dims[2], dims[3], dims[1])
    if any(d is None for d in hwc):
        raise ModelFileError(f"{path}'s input has shape {_shape_text(dims)}, whose image size is not fixed: "
                             "export the model for one image size")
    return {"input_layout": chosen, "layout_from": source, "input_shape": tuple(int(d) for d in hwc),
            "num_classes": int(out[1]), "dynamic_batch": dims[0] is None}


# --- ONNX ------------------------------------------------------------------------------------------------------
def _onnx_dims(value: Any) -> Dims:
    if not value.type.tensor_type.HasField("shape"):
        return ()
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in value.type.tensor_type.shape.dim)


def _inspect_onnx(path: Path, layout: str | None) -> dict[str, Any]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path))
    except Exception as exc:  # protobuf and the checker raise many kinds on a foreign or truncated file
        raise ModelFileError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {one_line(exc)}): "
                             f"{_FIXES}") from exc
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    outputs = list(graph.output)
    if len(outputs) == 1 and len(_onnx_dims(outputs[0])) == 2 and _onnx_dims(outputs[0])[1] is None:
        # an output whose class axis is not annotated: ONNX's shape inference may know it (best effort: the
        # signature check says what is missing)
        with contextlib.suppress(Exception):
            outputs = list(onnx.shape_inference.infer_shapes(model).graph.output)
    found = _signature(path, [_onnx_dims(v) for v in inputs], [_onnx_dims(v) for v in outputs], layout)
    opsets = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    params = 0
    for init in graph.initializer:
        count = 1
        for d in init.dims:
            count *= d
        params += count
    external = any(init.data_location == onnx.TensorProto.EXTERNAL for init in graph.initializer)
    facts = {"opset": opsets.get("ai.onnx"), "opsets": opsets, "ir_version": model.ir_version,
             "producer": model.producer_name, "producer_version": model.producer_version,
             "nodes": len(graph.node), "parameters": params, "external_data": external,
             "input_name": inputs[0].name, "output_name": outputs[0].name,
             "input_dtype": onnx.TensorProto.DataType.Name(inputs[0].type.tensor_type.elem_type).lower()}
    return {**found, "name": _short_name(graph.name, path), "facts": facts}


# --- LiteRT ----------------------------------------------------------------------------------------------------
def _litert_dims(detail: dict[str, Any]) -> Dims:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def _inspect_tflite(path: Path, layout: str | None) -> dict[str, Any]:
    with path.open("rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (it lacks the TFL3 identifier): convert the "
                             "model again with tf.lite.TFLiteConverter or litert-torch")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    except Exception as exc:  # the interpreter raises ValueError or RuntimeError on a corrupt flatbuffer
        raise ModelFileError(f"{path} is not a loadable LiteRT model ({one_line(exc)}): convert it again") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    found = _signature(path, [_litert_dims(d) for d in inputs], [_litert_dims(d) for d in outputs], layout,
                       says="NHWC")
    facts = {"input_dtype": inputs[0]["dtype"].__name__, "output_dtype": outputs[0]["dtype"].__name__,
             **_tflite_facts(path)}
    return {**found, "name": _short_name("", path), "facts": facts}


def _tflite_facts(path: Path) -> dict[str, Any]:
    """Schema version, description, operator count and elements of constant tensors (weights, after the
    converter folded and dropped some) from the flatbuffer (best effort)."""
    try:
        import numpy as np
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAs(path.read_bytes(), 0)
        graph = model.Subgraphs(0)
        params = 0
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            buffer = model.Buffers(tensor.Buffer())
            if buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1):
                params += int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
        return {"schema_version": model.Version(), "description": (model.Description() or b"").decode(errors="replace"),
                "subgraphs": model.SubgraphsLength(), "operators": graph.OperatorsLength(), "constant_elements": params}
    except Exception as exc:  # facts are informative; the interpreter already accepted the file
        return {"facts_error": one_line(exc)}


# --- Keras -----------------------------------------------------------------------------------------------------
def _keras_archive(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json, metadata.json) of a vetted `.keras` zip."""
    _check_archive(path, "Keras file")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            names = archive.namelist()
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a Keras 3 file (no readable config.json: {one_line(exc)}): save it "
                             "again with model.save('model.keras')") from exc
    return config, metadata


def _unsafe_keras_objects(config: Any) -> list[str]:
    """The Lambda layers, Python functions and non-Keras (custom, registered) objects a Keras config names."""
    found: list[str] = []
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        cls, module = item.get("class_name"), item.get("module")
        inner = item.get("config")
        layer = inner.get("name") if isinstance(inner, dict) else None
        label = f"{cls} layer {layer!r}" if layer else f"{item.get('registered_name') or cls}"
        if cls == "Lambda":
            found.append(label)
        elif cls == "__lambda__":
            found.append("a Python lambda")
        elif "module" in item and (not isinstance(module, str) or not (module == "keras" or
                                                                     module.startswith("keras."))):
            name = item.get("registered_name") or cls
            if cls == "function":
                found.append(f"the Python function {inner!r}")
            else:
                found.append(f"custom layer {name} ({layer!r})" if layer else f"custom object {name}")
    return list(dict.fromkeys(found))


def _vetted_keras(path: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(model, config, metadata) of a `.keras` file: refused when it names unsafe objects, else loaded safely."""
    config, metadata = _keras_archive(path)
    unsafe = _unsafe_keras_objects(config)
    if unsafe:
        shown = ", ".join(unsafe[:3]) + (f" and {len(unsafe) - 3} more" if len(unsafe) > 3 else "")
        raise ModelFileError(f"{path} is refused under Keras' safe mode: it uses {shown}, code that is not in the "
                             "file or would run from it: rebuild the model from standard Keras layers, or export it "
                             "to ONNX, .tflite or .pt2 and pass that file")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds on a foreign, corrupt or unsafe file
        raise ModelFileError(f"{path} does not load in Keras with safe_mode=True ({type(exc).__name__}: "
                             f"{one_line(exc)}): save it again with model.save('model.keras')") from exc
    return model, config, metadata


def load_keras(path: Path) -> Any:
    """The Keras model of a `.keras` file: `keras.saving.load_model(..., compile=False, safe_mode=True)` after
    the archive and its config are vetted."""
    path = Path(path)
    if file_kind(path)[1] != "keras":
        raise ModelFileError(f"{path} is not a .keras file: pass a model saved with model.save('model.keras')")
    return _vetted_keras(path)[0]


def _keras_dims(tensors: Any) -> list[Dims]:
    return [tuple(None if d is None else int(d) for d in tensor.shape) for tensor in tensors]


def _inspect_keras(path: Path, layout: str | None) -> dict[str, Any]:
    model, config, metadata = _vetted_keras(path)
    formats = {value for key, value in _pairs(config) if key == "data_format"}
    try:
        inputs, outputs = _keras_dims(model.inputs), _keras_dims(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ModelFileError(f"{path} holds a Keras model without a defined input ({one_line(exc)}): build it on "
                             "an input shape (keras.Input) before saving") from exc
    found = _signature(path, inputs, outputs, layout, says=None if "channels_first" in formats else "NHWC")
    facts = {"keras_version": metadata.get("keras_version"), "date_saved": metadata.get("date_saved"),
             "model_class": config.get("class_name"), "layers": len(model.layers),
             "parameters": int(model.count_params())}
    return {**found, "name": _short_name(model.name, path), "facts": facts}


def _pairs(value: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.extend(item.items())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


# --- PyTorch ---------------------------------------------------------------------------------------------------
def load_torch(path: Path) -> Any:
    """The module of a PyTorch file: `torch.export.load(path).module()` for a vetted `.pt2`, `torch.jit.load`
    for a TorchScript file; a pickle is refused."""
    path = Path(path)
    _, kind = file_kind(path)
    if kind not in ("torch.export", "torchscript"):
        raise ModelFileError(f"{path} is not a PyTorch model file: pass a .pt2 or a TorchScript file")
    if kind == "torch.export":
        return _load_program(path).module()
    return _load_torchscript(path)


def _load_program(path: Path) -> Any:
    vet_pt2(path)
    import torch

    try:
        return torch.export.load(str(path))
    except Exception as exc:  # the deserializer raises many kinds on a foreign or newer archive
        raise ModelFileError(f"{path} is not a loadable torch.export archive ({type(exc).__name__}: "
                             f"{one_line(exc)}): {EXPORT_HINT} with this PyTorch") from exc


def _load_torchscript(path: Path) -> Any:
    _check_archive(path, "TorchScript file")
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # TorchScript's reader raises RuntimeError on a foreign or corrupt archive
        raise ModelFileError(f"{path} is not a loadable TorchScript file ({one_line(exc)}): save it again with "
                             f"torch.jit.save, or {EXPORT_HINT}") from exc
    return module.eval()


def _fx_dims(node: Any) -> Dims:
    value = node.meta.get("val") if node is not None else None
    shape = getattr(value, "shape", None)
    if shape is None:
        return ()
    return tuple(d if isinstance(d, int) else None for d in shape)


def _inspect_pt2(path: Path, layout: str | None) -> dict[str, Any]:
    program = _load_program(path)
    nodes = {node.name: node for node in program.graph.nodes}
    signature = program.graph_signature
    inputs = [_fx_dims(nodes.get(name)) for name in signature.user_inputs]
    outputs = [_fx_dims(nodes.get(name)) for name in signature.user_outputs]
    found = _signature(path, inputs, outputs, layout)
    import torch

    params = sum(int(t.numel()) for t in program.state_dict.values())
    facts = {"torch_version": torch.__version__, "parameters": params,
             "nodes": sum(node.op == "call_function" for node in program.graph.nodes)}
    return {**found, "name": _short_name("", path), "facts": facts}


def _inspect_torchscript(path: Path, layout: str | None, shape: tuple[int, int, int] | None) -> dict[str, Any]:
    module = _load_torchscript(path)
    if shape is None:
        raise ModelFileError(f"{path} is a TorchScript file, which does not record its input's size: pass images of "
                             f"the size it takes, or {EXPORT_HINT}")
    h, w, c = shape
    runs: dict[str, tuple[int, ...]] = {}
    errors: list[str] = []
    for name in ([layout] if layout else list(LAYOUTS)):
        out = _run_zeros(module, (1, c, h, w) if name == "NCHW" else (1, h, w, c))
        if isinstance(out, tuple):
            runs[name] = out
        else:
            errors.append(out)
    if not runs:
        raise ModelFileError(f"{path} does not run on {h}x{w}x{c} images ({errors[0]}): pass images of the size "
                             "it takes")
    if len(runs) > 1:
        raise ModelFileError(f"{path} runs on {h}x{w}x{c} images in both layouts: pass --layout NCHW or "
                             "--layout NHWC")
    chosen, out = next(iter(runs.items()))
    if len(out) != 2 or out[1] < 1:
        raise ModelFileError(f"{path}'s output has shape {out}, not (N, classes): export the model with its "
                             "classifier's logits or probabilities as its only output")
    two = _run_zeros(module, (2, c, h, w) if chosen == "NCHW" else (2, h, w, c))
    facts = {"parameters": sum(int(p.numel()) for p in module.parameters()), "input_layout_probed": not layout}
    return {"input_layout": chosen, "layout_from": "argument" if layout else "probe", "input_shape": (h, w, c),
            "num_classes": int(out[1]), "dynamic_batch": two == (2, out[1]),
            "name": _short_name("", path), "facts": facts}


def _run_zeros(module: Any, dims: tuple[int, ...]) -> tuple[int, ...] | str:
    """The output shape of `module` on zeros of `dims`, or why it does not run."""
    import torch

    try:
        with torch.inference_mode():
            out = module(torch.zeros(dims))
    except Exception as exc:  # TorchScript raises RuntimeError (shape mismatch) and others
        return one_line(exc, 120)
    return tuple(int(d) for d in out.shape) if isinstance(out, torch.Tensor) else f"it returns {type(out).__name__}"
