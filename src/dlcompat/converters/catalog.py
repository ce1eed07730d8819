"""The built-in converter edges, as data."""

from __future__ import annotations

from dlcompat.converters.graph import Converter, register_converter

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
