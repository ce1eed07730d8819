"""The ONNX-consuming tools a reproducer or the conformance run drives, each as standalone source text.

Each tool is a `run(model_path, inputs)` function (its outputs as NumPy arrays, in the model's output order) written
as plain Python that imports only the tool, ONNX and NumPy. The same text goes into a reproducer's `repro.py` and
into the route server (`findings/conformance.py`) that runs it in the tool's toolchain environment, so a case fails
in the reproducer exactly as it failed in the run. `packages` are the distributions whose versions the reproducer's
`requirements.txt` pins (from the environment the failure was seen in); `env` names that environment.
"""

from __future__ import annotations

from dataclasses import dataclass

_ORT = '''\
import onnxruntime as ort
def run(model_path, inputs):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip([i.name for i in session.get_inputs()], inputs)))
'''

_ONNX2TORCH = '''\
import torch
from onnx2torch import convert
def run(model_path, inputs):
    model = convert(str(model_path)).eval()
    with torch.no_grad():
        out = model(*[torch.from_numpy(x) if isinstance(x, np.ndarray) else [torch.from_numpy(t) for t in x]
                      for x in inputs])  # a list: a sequence-typed input
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
'''

# onnx2tf prints an error and calls sys.exit: the run raises the ERROR lines it printed instead. It moves channels
# last: an input is given in the layout the Keras model asks for, and an output whose
# shape is the ONNX one with channels moved last is moved back (onnx2tf's documented NCHW -> NHWC transposition)
_ONNX2TF = '''\
import contextlib, io, tempfile, onnx2tf
def run(model_path, inputs):
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()) as log:
        try:  # onnx2tf prints its error and exits: raise what it printed
            model = onnx2tf.convert(input_onnx_file_path=str(model_path), output_folder_path=folder,
                                    non_verbose=True, tflite_backend="tf_converter")  # returns the tf_keras model
        except SystemExit:
            raise RuntimeError(" ".join(s for s in log.getvalue().splitlines() if "ERROR" in s)) from None
        fit = [x if isinstance(x, list) or [d or s for d, s in zip(k.shape, x.shape)] == list(x.shape)
               else np.moveaxis(x, 1, -1) for k, x in zip(model.inputs, inputs)]
        out = model(fit if len(fit) > 1 else fit[0])
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
'''


@dataclass(frozen=True)
class Tool:
    name: str  # the package a maintainer would get the issue
    env: str  # the toolchain environment it runs in (envs/registry.py)
    source: str  # `run(model_path, inputs)`, standalone
    packages: tuple[str, ...]  # what requirements.txt pins
    #: requirement lines written before the pins (an index the pinned build comes from)
    index_lines: tuple[str, ...] = ()
    #: output shapes that may differ from ONNX's by channels moved last (onnx2tf's layout)
    channels_last: bool = False


TOOLS: dict[str, Tool] = {
    "onnxruntime": Tool("onnxruntime", "main", _ORT, ("onnxruntime", "onnx", "numpy", "protobuf")),
    "onnx2torch": Tool("onnx2torch", "onnx2torch", _ONNX2TORCH,
                       ("onnx2torch", "torch", "torchvision", "onnx", "numpy", "protobuf")),
    "onnx2tf": Tool("onnx2tf", "onnx2tf", _ONNX2TF,
                    ("onnx2tf", "tensorflow", "tf_keras", "keras", "onnx", "onnx_graphsurgeon", "sng4onnx",
                     "sne4onnx", "onnxsim", "onnxruntime", "ai-edge-litert", "psutil", "numpy", "protobuf",
                     "ml_dtypes", "h5py"), channels_last=True),
}


def tool(name: str) -> Tool:
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    return TOOLS[name]
