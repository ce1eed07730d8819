"""Helpers of the findings tests: localise an artifact with the right runner; an edited copy of an ONNX file."""

from __future__ import annotations

import onnx

from dlcompat.findings.align import align_onnx, align_tflite
from dlcompat.findings.localise import localise, read_tensors
from dlcompat.runtimes.litert import LiteRTRunner
from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner


def onnx_localisation(source, path):
    alignment = align_onnx(path, source.spec)
    with OnnxRuntimeRunner(path, input_layout=source.input_layout) as runner:
        tensors = read_tensors(runner, alignment, source.x)
    return localise(source.spec, source.weights, source.x, tensors, alignment, source.floor)


def tflite_localisation(source, path):
    alignment = align_tflite(path, source.spec)
    with LiteRTRunner(path, threads=1) as runner:
        tensors = read_tensors(runner, alignment, source.x)
    return localise(source.spec, source.weights, source.x, tensors, alignment, source.floor)


def edited_onnx(source, tmp_path, edit):
    model = onnx.load(str(source.path))
    edit(model.graph)
    path = tmp_path / "faulty.onnx"
    onnx.save(model, str(path))
    return path
