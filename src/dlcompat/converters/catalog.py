"""The built-in model formats and converter edges, as data."""

from __future__ import annotations

from dlcompat.converters.graph import Converter, ModelFormat, register_converter, register_format

register_format(ModelFormat(name="onnx", title="ONNX"))
register_format(ModelFormat(name="tflite", title="TensorFlow Lite"))
register_format(ModelFormat(name="pte", title="ExecuTorch program"))
register_format(ModelFormat(name="coreml", title="Core ML"))
register_format(ModelFormat(name="tfjs", title="TensorFlow.js"))
#: what the migration edges write: a program that loads in the target framework without unpickling anything
register_format(ModelFormat(name="pt2", title="PyTorch program (torch.export)"))
register_format(ModelFormat(name="savedmodel", title="TensorFlow SavedModel"))
#: a framework's weights in the canonical layout (.npz), which the `weights` runtime loads into another framework
register_format(ModelFormat(name="weights", title="weights"))

register_converter(
    Converter(
        name="torch.onnx",
        source="pytorch",
        target="onnx",
        env="main",
        function="dlcompat.converters.torch_onnx:convert",
        tool="torch.onnx.export",
        module="torch",
        variants=("dynamo", "torchscript"),
        suffix=".onnx",
    )
)

register_converter(
    Converter(
        name="keras.onnx",
        source="tensorflow",
        target="onnx",
        env="main",
        function="dlcompat.converters.keras_onnx:convert",
        tool="keras Model.export(format='onnx')",
        module="keras",
        variants=("keras", "tf2onnx"),
        suffix=".onnx",
    )
)

# JAX has no ONNX exporter of its own: jax2tf into TensorFlow, then tf2onnx (the variants are explained in
# dlcompat.converters.jax_onnx; "tf2onnx" straight from jax2tf's function fails on its XlaCallModule op)
register_converter(
    Converter(
        name="jax.onnx",
        source="jax",
        target="onnx",
        env="main",
        function="dlcompat.converters.jax_onnx:convert",
        tool="jax2tf + tf2onnx",
        module="tf2onnx",
        variants=("tflite-tf2onnx", "tf2onnx"),
        suffix=".onnx",
    )
)

# Migration: ONNX into a framework. Each edge is named as the runtime that runs what it writes there
# (`dlcompat.runtimes.catalog`), so that a route reads `torch.onnx (torchscript) → onnx2torch`.
register_converter(
    Converter(
        name="onnx2torch",
        source="onnx",
        target="pt2",
        env="onnx2torch",
        function="dlcompat.converters.onnx_torch:convert",
        tool="onnx2torch + torch.export",
        module="onnx2torch",
        suffix=".pt2",
    )
)
register_converter(
    Converter(
        name="onnx2tf",
        source="onnx",
        target="savedmodel",
        env="onnx2tf",
        function="dlcompat.converters.onnx_keras:convert",
        tool="onnx2tf (tf_keras model) + tf.saved_model.save",
        module="onnx2tf",
        suffix=".savedmodel.zip",
    )
)

register_converter(
    Converter(
        name="keras.tfjs",
        source="tensorflow",
        target="tfjs",
        env="tfjs",
        function="dlcompat.converters.keras_tfjs:convert",
        tool="tensorflowjs (SavedModel -> graph model)",
        module="tensorflowjs",
        variants=("none", "uint8", "uint16", "float16"),
        suffix=".tfjs.zip",
    )
)

# Mobile: LiteRT (tflite) from every framework that has a way there, in the four precisions of
# `dlcompat.converters.tflite_variants`; int8-full calibrates on training images (`calibrated`).
_TFLITE_VARIANTS = ("fp32", "fp16", "int8-dynamic", "int8-full")
register_converter(
    Converter(
        name="keras.tflite",
        source="tensorflow",
        target="tflite",
        env="main",
        function="dlcompat.converters.keras_tflite:convert",
        tool="keras SavedModel export + tf.lite.TFLiteConverter",
        module="tensorflow",
        variants=_TFLITE_VARIANTS,
        suffix=".tflite",
        calibrated=("int8-full",),
    )
)
register_converter(
    Converter(
        name="jax.tflite",
        source="jax",
        target="tflite",
        env="main",
        function="dlcompat.converters.jax_tflite:convert",
        tool="jax2tf SavedModel + tf.lite.TFLiteConverter",
        module="tensorflow",
        variants=_TFLITE_VARIANTS,
        suffix=".tflite",
        calibrated=("int8-full",),
    )
)
register_converter(
    Converter(
        name="torch.tflite",
        source="pytorch",
        target="tflite",
        env="litert-torch",
        function="dlcompat.converters.torch_tflite:convert",
        tool="litert-torch (PyTorch -> LiteRT, static batch 1)",
        module="litert_torch",
        variants=("fp32", "int8-dynamic", "int8-full"),
        suffix=".tflite",
        calibrated=("int8-full",),
    )
)
register_converter(
    Converter(
        name="onnx2tf.tflite",
        source="onnx",
        target="tflite",
        env="onnx2tf",
        function="dlcompat.converters.onnx_tflite:convert",
        tool="onnx2tf (tf_converter backend)",
        module="onnx2tf",
        variants=_TFLITE_VARIANTS,
        suffix=".tflite",
        calibrated=("int8-full",),
    )
)
register_converter(
    Converter(
        name="torch.pte",
        source="pytorch",
        target="pte",
        env="main",
        function="dlcompat.converters.torch_pte:convert",
        tool="torch.export + ExecuTorch (XNNPACK delegate)",
        module="executorch",
        variants=("fp32", "int8", "portable"),
        suffix=".pte",
        calibrated=("int8",),
    )
)
# Core ML: conversion (and the package's size) anywhere; prediction only on macOS (dlcompat.runtimes.coreml)
register_converter(
    Converter(
        name="torch.coreml",
        source="pytorch",
        target="coreml",
        env="main",
        function="dlcompat.converters.torch_coreml:convert",
        tool="coremltools (torch.export program -> ML Program)",
        module="coremltools",
        variants=("fp32", "fp16", "int8-weights"),
        suffix=".mlpackage.zip",
    )
)
register_converter(
    Converter(
        name="keras.coreml",
        source="tensorflow",
        target="coreml",
        env="main",
        function="dlcompat.converters.keras_coreml:convert",
        tool="coremltools (TensorFlow concrete function -> ML Program)",
        module="coremltools",
        variants=("fp32", "fp16", "int8-weights"),
        suffix=".mlpackage.zip",
    )
)
