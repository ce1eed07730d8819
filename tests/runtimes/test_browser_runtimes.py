"""ONNX Runtime Web and TensorFlow.js in a real headless Chromium, on LeNet-5 with real MNIST images.

Every backend's logits are compared with the server side's on the same 500 test images: ONNX Runtime
for ORT-web, Keras for TF.js. A backend this machine's browser does not offer (WebGPU without an
adapter) must come back as `Unavailable` with the browser's reason, never as a crash.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.frameworks.base import Unavailable
from dlcompat.metrics.latency import LatencyMethod, median_ci, summarize
from dlcompat.runtimes.browser.runner import OrtWebRunner, TfjsRunner

#: a short latency method: enough samples for the statistics, little wall time
QUICK = LatencyMethod(warmup=5, warmup_time_s=0.02, min_repeats=20, min_time_s=0.05, max_time_s=1.0)

#: samples (ms) on which the page's port of the CI of the median must agree with metrics.latency.median_ci
CI_CASES = [np.random.default_rng(n).lognormal(-3, 0.3, n).round(6).tolist() for n in (35, 36, 38, 101, 900, 1234)]


def check_runner(runner, x: np.ndarray, expected: np.ndarray, atol: float) -> dict:
    """Activate, infer the test split and time one image in the page; always deactivate. Returns what it saw."""
    try:
        runner.activate()
        logits = runner.infer(x)
        timings = runner.timings(x[:1], QUICK.to_dict())
        stats = summarize(method=QUICK, **timings)
        page_cis = [runner.call("medianCi", samples, 0.95, 0.005) for samples in CI_CASES]
        single = runner.predictor(x[:3])()
        info, figures = runner.info(), dict((m, v) for m, v, _ in runner.figures())
    finally:
        runner.deactivate()
    assert runner.session is None
    assert logits.shape == expected.shape and logits.dtype == np.float32
    gap = float(np.abs(logits - expected).max())
    assert gap <= atol, f"max |Δ| {gap:.3g} against the server side"
    np.testing.assert_allclose(single, logits[:3], rtol=1e-5, atol=1e-5)
    # the page's own clock, judged by the same rules (on a loaded machine the short method may not converge)
    assert stats.repeats >= 1 and stats.p50 > 0 and stats.first_call_ms is not None
    assert stats.clock.startswith("performance.now()") and (stats.converged or stats.unmet)
    # the page measured its clock's tick and grouped calls against it; the CI holds the median and the floor
    assert timings["calls_per_sample"] >= 1 and 0 < timings["clock_tick_ns"] <= 1e6
    assert stats.calls_per_sample == timings["calls_per_sample"] and stats.clock_tick_ns == timings["clock_tick_ns"]
    if stats.median_ci_low is not None:
        floor = 0.999 * stats.clock_tick_ns / stats.calls_per_sample / 1e6  # ms, one tick per sample
        assert stats.median_ci_low <= stats.p50 - floor and stats.median_ci_high >= stats.p50 + floor
    for samples, page in zip(CI_CASES, page_cis, strict=True):
        ours = median_ci(np.asarray(samples), 0.95, 0.005)
        if ours is None:
            assert page is None
        else:
            assert page["blocks"] == ours.blocks
            np.testing.assert_allclose([page["low"], page["high"], page["median"]], [ours.low, ours.high, ours.median],
                                       rtol=0, atol=1e-12)
    print(f"{info['runtime']} {info['variant']} ({info['backend']}, {info['threads']} threads): max |Δ| {gap:.2g}, "
          f"p50 {stats.p50:.3g} ms per image over {stats.repeats} samples of {stats.calls_per_sample} calls "
          f"({stats.clock_tick_ns / 1e3:.3g} µs ticks), served {figures['model_size_served']:.0f} B")
    assert info["browser"].startswith("Chromium ") and info["cross_origin_isolated"] is True
    assert figures["model_size_served"] > 1000 and figures["model_download_time"] >= 0
    return {"info": info, "gap": gap, "stats": stats, "logits": logits, "figures": figures}


@pytest.mark.parametrize(("variant", "threads"), [("wasm", 1), ("wasm-threads", 2)])
def test_ortweb_wasm_matches_onnxruntime(lenet5_onnx, mnist_test, variant, threads):
    x, y = mnist_test
    seen = check_runner(OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant=variant),
                        x, lenet5_onnx["logits"], atol=1e-4)
    info = seen["info"]
    assert info["runtime"] == "ortweb" and info["version"] == "1.30.0" and info["bundle"] == "ort.wasm.min.mjs"
    assert info["backend"] == "wasm" and info["threads"] == threads
    assert (seen["logits"].argmax(1) == lenet5_onnx["logits"].argmax(1)).all()
    assert (seen["logits"].argmax(1) == y).mean() > 0.8  # one epoch on 2,000 images: the model has learned


def test_ortweb_webgpu_runs_or_says_why_not(lenet5_onnx, mnist_test):
    x, _ = mnist_test
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="webgpu")
    try:
        seen = check_runner(runner, x, lenet5_onnx["logits"], atol=1e-3)
    except Unavailable as exc:  # no GPU here: the page's own reason, and nothing left running
        assert "webgpu" in str(exc).lower() and "Chromium" in str(exc)
        assert runner.session is None
    else:
        assert seen["info"]["backend"] == "webgpu"


def test_ortweb_webgl_rejects_a_symbolic_batch_dimension(lenet5_onnx, mnist_test):
    """A finding, kept as a test: ONNX Runtime Web 1.30's WebGL backend checks inputs against the graph's
    declared shape and accepts no named (dim_param) dimension, which every exporter here writes for the batch."""
    x, _ = mnist_test
    runner = OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="webgl")
    with pytest.raises(RuntimeError, match=r"input tensor\[0\] check failed: expected shape '\[,1,28,28\]'"):
        check_runner(runner, x[:8], lenet5_onnx["logits"][:8], atol=1e-3)
    assert runner.session is None


@pytest.mark.parametrize("variant", ["cpu", "wasm", "webgl"])
def test_tfjs_matches_keras(keras_lenet5, tfjs_models, mnist_test, variant):
    x, y = mnist_test
    seen = check_runner(TfjsRunner(tfjs_models["none"]["path"], variant=variant), x, keras_lenet5["logits"],
                        atol=1e-4)
    info = seen["info"]
    assert info["runtime"] == "tfjs" and info["version"] == "4.22.0" and info["backend"] == variant
    assert info["threads"] == (None if variant == "webgl" else 1)
    if variant == "webgl":  # WebGL exists on every machine, on Chromium's software GPU where there is no GPU
        assert info["gpu"] and info["software_gpu"] in (True, False)
    assert (seen["logits"].argmax(1) == keras_lenet5["logits"].argmax(1)).mean() >= 0.998
    assert (seen["logits"].argmax(1) == y).mean() > 0.8


def test_tfjs_quantized_weights_are_smaller_and_close(keras_lenet5, tfjs_models, mnist_test):
    x, _ = mnist_test
    served = {}
    for variant, atol in (("uint8", 0.5), ("float16", 0.05)):
        facts = tfjs_models[variant]["facts"]
        assert facts["quantization"] == variant and facts["model_kind"] == "graph-model"
        seen = check_runner(TfjsRunner(tfjs_models[variant]["path"], variant="wasm"), x, keras_lenet5["logits"],
                            atol=atol)
        served[variant] = seen["figures"]["model_size_served"]
        assert (seen["logits"].argmax(1) == keras_lenet5["logits"].argmax(1)).mean() >= 0.95
    fp32 = tfjs_models["none"]["path"].stat().st_size
    assert served["uint8"] < served["float16"] < fp32
