"""The built-in runtimes, as data. Runner modules are imported only when a job runs one."""

from __future__ import annotations

from dlcompat.runtimes.base import RuntimeEntry, register_runtime

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
