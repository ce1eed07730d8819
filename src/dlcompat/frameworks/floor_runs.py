"""The executions of a user's model that a check's noise floor is made of: in float64 (the reference), with its
weights rounded to float16 (the float16 floor), and with its framework's other kernels (an honest re-execution).

A zoo model has a float64 reference by construction (its spec, evaluated by `zoo.reference`). A model dlcompat did
not build gets one where its framework can run it in float64 as it is:
- a Keras model is rebuilt from its own config with every float dtype policy set to float64 and given its
  weights cast to float64 (the same layers, the same computation, in float64);
- a PyTorch module (a `torch.export` program's module or a TorchScript module) is cast with `.double()`.
An ONNX or LiteRT file has no such execution here (ONNX Runtime has no float64 convolution; LiteRT none at all): its
check judges against float32 re-executions instead (`study/jobs/check_floor.py` says which).

`rounded_to="float16"` rounds every floating weight to float16 first (kept in float64 for the computation): the
error that storing the weights in float16 causes by itself, the float16 floor of a float16 route. For an ONNX file
the same rounding is applied to its float initializers (`onnx_weights_rounded`), run in ONNX Runtime in float32.

`other_kernels_logits` is the file in float32 on its framework's other kernels: a Keras model compiled by XLA
(`jit_compile=True`) instead of TensorFlow's graph kernels, a PyTorch module with oneDNN off
(`torch.backends.mkldnn.flags(enabled=False)`): other convolution algorithms, other rounding, the same model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.frameworks.imported import load_keras, load_torch

#: the kinds of file this module runs in float64
FLOAT64_KINDS = ("keras", "torch.export", "torchscript")


def _rounded(w: np.ndarray, rounded_to: str | None) -> np.ndarray:
    if rounded_to and np.issubdtype(w.dtype, np.floating):
        w = w.astype(rounded_to)
    return w.astype(np.float64) if np.issubdtype(w.dtype, np.floating) else w


def _float64_config(obj: Any) -> Any:
    """A Keras config with every float32/float16/bfloat16 dtype (plain or a DTypePolicy) made float64."""
    if isinstance(obj, list):
        return [_float64_config(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if key == "dtype" and value in ("float32", "float16", "bfloat16"):
            out[key] = "float64"
        elif key == "dtype" and isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name", "")):
            out[key] = {**value, "config": {**value.get("config", {}), "name": "float64"}}
        else:
            out[key] = _float64_config(value)
    return out


def _keras_logits(path: Path, x: np.ndarray, rounded_to: str | None) -> np.ndarray:
    model = load_keras(path)
    clone = model.__class__.from_config(_float64_config(model.get_config()))
    clone.set_weights([_rounded(np.asarray(w), rounded_to) for w in model.get_weights()])
    return np.concatenate([np.asarray(clone(x[i:i + 32].astype(np.float64), training=False), dtype=np.float64)
                           for i in range(0, len(x), 32)])


def _torch_logits(path: Path, x: np.ndarray, layout: str, rounded_to: str | None) -> np.ndarray:
    import torch

    module = load_torch(path)
    module = module.double()
    if rounded_to:
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(getattr(torch, rounded_to)).double())
    xt = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(xt[i:i + 32], dtype=np.float64)))
                               .numpy() for i in range(0, len(xt), 32)])


def float64_logits(path: Path, kind: str, x_nhwc: np.ndarray, layout: str,
                   rounded_to: str | None = None) -> np.ndarray | None:
    """The model's logits in float64 for float NHWC images already scaled as it takes them; None for a kind with no
    float64 execution here (`FLOAT64_KINDS`)."""
    if kind == "keras":
        return _keras_logits(Path(path), x_nhwc, rounded_to)
    if kind in ("torch.export", "torchscript"):
        return _torch_logits(Path(path), x_nhwc, layout, rounded_to)
    return None


def onnx_weights_rounded(path: Path, rounded_to: str = "float16") -> bytes:
    """The ONNX model at `path`, serialized, with every float32 initializer rounded to `rounded_to` (and stored
    back as float32)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            value = numpy_helper.to_array(init).astype(rounded_to).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    return model.SerializeToString()


#: kind -> what `other_kernels_logits` switches
OTHER_KERNELS = {"keras": "XLA-compiled (jit_compile=True)", "torch.export": "oneDNN off (mkldnn.flags)",
                 "torchscript": "oneDNN off (mkldnn.flags)"}


def other_kernels_logits(path: Path, kind: str, x_nhwc: np.ndarray, layout: str) -> np.ndarray | None:
    """The model's float32 logits on its framework's other kernels (`OTHER_KERNELS`); None for other kinds."""
    x = np.asarray(x_nhwc, dtype=np.float32)
    if kind == "keras":
        import tensorflow as tf

        model = load_keras(Path(path))
        call = tf.function(lambda t: model(t, training=False), jit_compile=True)
        return np.concatenate([np.asarray(call(tf.constant(x[i:i + 32]))) for i in range(0, len(x), 32)])
    if kind in ("torch.export", "torchscript"):
        import torch

        module = load_torch(Path(path))
        xt = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(xt[i:i + 32]))).numpy()
                                   for i in range(0, len(xt), 32)])
    return None
