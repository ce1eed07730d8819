"""The built-in runtimes, as data. Runner modules are imported only when a job runs one."""

from __future__ import annotations

from dlcompat.runtimes.base import RuntimeEntry, register_runtime

# The framework runtimes: they run in the environment of the framework whose adapter they use (env "").
register_runtime(
    RuntimeEntry(
        name="native",
        runner="dlcompat.runtimes.native:NativeRunner",
        env="",
        accepts="(the framework's own file)",
        module="",
        install="",
        platform="framework",
        description="the framework's own saved model, run by its adapter with its fastest idiom",
    )
)
register_runtime(
    RuntimeEntry(
        name="weights",
        runner="dlcompat.runtimes.weights:WeightsRunner",
        env="",
        accepts="canonical weights (.npz)",
        module="",
        install="",
        platform="framework",
        description="weight transfer: another framework's canonical weights in this framework's native model",
    )
)
register_runtime(
    RuntimeEntry(
        name="onnxruntime",
        runner="dlcompat.runtimes.onnxruntime:OnnxRuntimeRunner",
        env="main",
        accepts="onnx",
        module="onnxruntime",
        install="pip install 'dlcompat[onnx]' (onnxruntime==1.32.0), or `make setup`",
        platform="server",
        description="ONNX Runtime, CPUExecutionProvider, InferenceSession.run",
    )
)

register_runtime(
    RuntimeEntry(
        name="onnx2torch",
        runner="dlcompat.runtimes.onnx2torch:OnnxToTorchRunner",
        env="onnx2torch",
        accepts="onnx",
        module="onnx2torch",
        install="`dlcompat env sync onnx2torch`",
        platform="migration",
        description="ONNX -> PyTorch with onnx2torch, run in PyTorch",
        framework="pytorch",
    )
)
register_runtime(
    RuntimeEntry(
        name="onnx2tf",
        runner="dlcompat.runtimes.onnx2tf:OnnxToTfRunner",
        env="onnx2tf",
        accepts="onnx",
        module="onnx2tf",
        install="`dlcompat env sync onnx2tf` (needs Python 3.12)",
        platform="migration",
        description="ONNX -> TensorFlow with onnx2tf (tf_keras model, NHWC), run as a tf.function",
        framework="tensorflow",
    )
)
