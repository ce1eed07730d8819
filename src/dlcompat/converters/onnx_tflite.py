"""Edge onnx -> tflite: onnx2tf (2.x, the `onnx2tf` toolchain environment), through TensorFlow's converter.

onnx2tf rebuilds the ONNX graph in TensorFlow, transposed to NHWC, and writes LiteRT files of every
precision in one run: ``<name>_float32``, ``_float16``, ``_dynamic_range_quant`` and, given calibration
data, ``_full_integer_quant`` (int8 input and output). The edge asks only for what its variant needs
and keeps that one file. onnx2tf rewrites its input `.onnx` in place, so it works on a copy, in a
temporary folder that goes when it is done. `tflite_backend="tf_converter"`: onnx2tf 2.x's own
flatbuffer writer does only a part of the quantizations.

The calibration images (training split, float32 in [0, 1]) go to onnx2tf as a `.npy` in TensorFlow's
layout (NHWC) with mean 0 and std 1, so that the int8 input's scale and zero point describe the images
exactly as the other runtimes receive them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dlcompat.converters.onnx_layout import nhwc_inputs
from dlcompat.converters.tflite_variants import check_variant
from dlcompat.zoo.spec import ModelSpec

#: variant -> the suffix of the file onnx2tf writes for it
_OUTPUTS = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range_quant",
            "int8-full": "full_integer_quant"}


def convert(source: Path, target: Path, *, spec: ModelSpec, variant: str = "fp32", threads: int = 1,
            calibration: np.ndarray | None = None) -> dict[str, Any]:
    check_variant("onnx2tf.tflite", variant, calibration)
    import onnx
    import onnx2tf
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # a worker where TensorFlow already ran keeps its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="dlcompat-onnx2tf-tflite-"))
    try:
        model_path = workdir / "model.onnx"
        shutil.copyfile(source, model_path)  # onnx2tf rewrites its input file
        model = onnx.load(str(model_path))
        options: dict[str, Any] = {"tflite_backend": "tf_converter", "non_verbose": True}
        keep = nhwc_inputs(model, spec)  # a Keras or jax export: onnx2tf keeps them as they are
        if keep:
            options["keep_nwc_or_nhwc_or_ndhwc_input_names"] = keep
        if variant == "int8-dynamic":
            options["output_dynamic_range_quantized_tflite"] = True
        if variant == "int8-full":
            assert calibration is not None
            data = workdir / "calibration.npy"
            np.save(data, np.ascontiguousarray(calibration, dtype=np.float32))
            c = spec.input_shape[2]
            options.update(output_integer_quantized_tflite=True, input_quant_dtype="int8", output_quant_dtype="int8",
                           quant_type="per-channel",
                           custom_input_op_name_np_data_path=[[model.graph.input[0].name, str(data),
                                                               np.zeros((1, 1, 1, c)).tolist(),
                                                               np.ones((1, 1, 1, c)).tolist()]])
        onnx2tf.convert(input_onnx_file_path=str(model_path), output_folder_path=str(workdir / "out"), **options)
        written = workdir / "out" / f"model_{_OUTPUTS[variant]}.tflite"
        if not written.exists():
            found = ", ".join(sorted(p.name for p in (workdir / "out").glob("*.tflite"))) or "none"
            raise RuntimeError(f"onnx2tf wrote no {written.name} (it wrote: {found})")
        shutil.copyfile(written, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    facts: dict[str, Any] = {"variant": variant, "input_dtype": "float32", "output_dtype": "float32",
                             "weights": {"fp32": "float32", "fp16": "float16", "int8-dynamic": "int8",
                                         "int8-full": "int8"}[variant]}
    if variant == "int8-full":
        facts.update(activations="int8", input_dtype="int8", output_dtype="int8",
                     calibration_images=len(calibration), calibration_split="train")  # type: ignore[arg-type]
    return {"tool": "onnx2tf (tflite_backend=tf_converter)", "tool_version": onnx2tf.__version__,
            "tensorflow": tf.__version__, "onnx": onnx.__version__, "input_layout": "NHWC",
            "onnx2tf_file": written.name, **facts}
