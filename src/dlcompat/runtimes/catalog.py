"""The built-in runtimes, as data. Runner modules are imported only when a job runs one."""

from __future__ import annotations

from dlcompat.runtimes.base import RuntimeEntry, register_runtime

# The framework runtimes: they run in the environment of the framework whose adapter they use (env "").
register_runtime(
    RuntimeEntry(
        name="native",
        title="native",
        runner="dlcompat.runtimes.native:NativeRunner",
        env="",
        accepts="",
        module="",
        package="",
        install="",
        platform="framework",
        description="the framework's own saved model, run by its adapter with its fastest idiom",
    )
)
register_runtime(
    RuntimeEntry(
        name="weights",
        title="weights",
        runner="dlcompat.runtimes.weights:WeightsRunner",
        env="",
        accepts="weights",
        module="",
        package="",
        install="",
        platform="framework",
        description="weight transfer: another framework's canonical weights in this framework's native model",
    )
)
register_runtime(
    RuntimeEntry(
        name="onnxruntime",
        title="ONNX Runtime",
        runner="dlcompat.runtimes.onnxruntime:OnnxRuntimeRunner",
        env="main",
        accepts="onnx",
        module="onnxruntime",
        package="onnxruntime",
        install="pip install 'dlcompat[onnx]' (onnxruntime==1.32.0), or `make setup`",
        platform="server",
        description="ONNX Runtime, CPUExecutionProvider, InferenceSession.run",
    )
)

register_runtime(
    RuntimeEntry(
        name="onnx2torch",
        title="onnx2torch",
        runner="dlcompat.runtimes.onnx2torch:OnnxToTorchRunner",
        env="onnx2torch",
        accepts="pt2",
        module="onnx2torch",
        package="onnx2torch",
        install="`dlcompat env sync onnx2torch`",
        platform="migration",
        description="ONNX -> PyTorch with onnx2torch: the torch.export program its converter edge wrote, run in "
        "PyTorch",
        framework="pytorch",
    )
)
register_runtime(
    RuntimeEntry(
        name="onnx2tf",
        title="onnx2tf",
        runner="dlcompat.runtimes.onnx2tf:OnnxToTfRunner",
        env="onnx2tf",
        accepts="savedmodel",
        module="onnx2tf",
        package="onnx2tf",
        install="`dlcompat env sync onnx2tf` (needs Python 3.12)",
        platform="migration",
        description="ONNX -> TensorFlow with onnx2tf: the SavedModel its converter edge wrote (NHWC), run as its "
        "traced function",
        framework="tensorflow",
    )
)

# The web runtimes: a page in headless Chromium (Debian's), served from 127.0.0.1 with the npm packages of web/.
# Each variant is a backend, evaluated apart; one the browser does not offer is recorded as unavailable.
register_runtime(
    RuntimeEntry(
        name="ortweb",
        title="ONNX Runtime Web",
        runner="dlcompat.runtimes.browser.runner:OrtWebRunner",
        env="main",
        accepts="onnx",
        module="playwright",
        package="",
        install="`make setup` (Debian's chromium, playwright==1.65.2, and `npm ci` in web/: onnxruntime-web 1.30.0)",
        platform="web",
        description="ONNX Runtime Web in headless Chromium: wasm (1 thread), wasm-threads (cross-origin isolated), "
        "WebGPU, WebGL",
        variants=("wasm", "wasm-threads", "webgpu", "webgl"),
    )
)
register_runtime(
    RuntimeEntry(
        name="tfjs",
        title="TensorFlow.js",
        runner="dlcompat.runtimes.browser.runner:TfjsRunner",
        env="main",
        accepts="tfjs",
        module="playwright",
        package="",
        install="`make setup` (Debian's chromium, playwright==1.65.2, and `npm ci` in web/: @tensorflow/tfjs 4.22.0)",
        platform="web",
        description="TensorFlow.js graph model in headless Chromium: cpu, wasm, WebGL backends",
        variants=("cpu", "wasm", "webgl"),
    )
)

# The mobile runtimes, run on this machine's CPU with the job's thread budget (a phone's big core: 1).
register_runtime(
    RuntimeEntry(
        name="litert",
        title="LiteRT",
        runner="dlcompat.runtimes.litert:LiteRTRunner",
        env="main",
        accepts="tflite",
        module="ai_edge_litert",
        package="ai_edge_litert",
        install="pip install ai-edge-litert==2.3.0, or `make setup`",
        platform="mobile",
        description="LiteRT (ai-edge-litert Interpreter, default XNNPACK delegate), set_tensor + invoke(); "
        "full-integer models fed integers quantized with the model's own scale and zero point",
    )
)
register_runtime(
    RuntimeEntry(
        name="executorch",
        title="ExecuTorch",
        runner="dlcompat.runtimes.executorch:ExecuTorchRunner",
        env="main",
        accepts="pte",
        module="executorch",
        package="executorch",
        install="pip install executorch==1.5.1 torch==2.13.0 (in one command, so pip keeps the CPU torch), "
        "or `make setup`",
        platform="mobile",
        description="ExecuTorch's runtime (Python bindings of the C++ runtime): Program.load_method('forward')"
        ".execute, XNNPACK's thread pool at the job's thread budget",
    )
)
register_runtime(
    RuntimeEntry(
        name="coreml",
        title="Core ML",
        runner="dlcompat.runtimes.coreml:CoreMLRunner",
        env="main",
        accepts="coreml",
        module="coremltools",
        package="coremltools",
        install="pip install coremltools==9.0, or `make setup` (prediction needs macOS)",
        platform="mobile",
        description="Core ML (ML Program via coremltools MLModel.predict, CPU only); prediction needs macOS, "
        "elsewhere recorded as unavailable",
    )
)
