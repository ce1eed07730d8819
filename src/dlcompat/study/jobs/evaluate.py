"""Job `evaluate`: run a model artifact in one runtime on the full test split; accuracy, size, load time, latency.

The order is the method's (`dlcompat.metrics.latency`): load (timed: `load_time`, peak RSS `peak_rss_load`),
then the latency measurement on `batch_size` images — the first call after load (`first_inference`),
the warm-up and the steady state (`latency_*`, peak RSS `peak_rss_inference`) — then the timed call's
output is checked against `infer` on the same images, and only then does the full test split run for
accuracy. `peak_rss` is the job's overall high-water mark.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from dlcompat.metrics.accuracy import top1_accuracy
from dlcompat.metrics.latency import LatencyMethod, LatencyStats, measure_latency, summarize
from dlcompat.metrics.memory import peak_rss_bytes, reset_peak_rss
from dlcompat.metrics.size import artifact_size_bytes
from dlcompat.runtimes import parking
from dlcompat.runtimes.base import Runner
from dlcompat.study.jobs.base import JobContext
from dlcompat.study.jobs.common import dataset_of, labelled, model_inputs, model_runner

#: steady-state statistics recorded as `latency_<name>` rows (ms per call at the method's batch size)
LATENCY_STATS = ("p10", "p50", "p90", "p99", "mean", "std", "min", "median_ci_low", "median_ci_high")


def run(ctx: JobContext) -> None:
    data = dataset_of(ctx)
    artifact = ctx.inputs["model"][ctx.params.get("artifact_key", "artifact")]  # "weights" for weight transfer
    path = ctx.artifacts.path(artifact)
    runner, parking_key = model_runner(ctx)
    method = LatencyMethod.from_dict(ctx.params.get("latency", {}))

    x_test = model_inputs(ctx, data.test.x)
    x_batch = x_test[np.arange(method.batch_size) % len(x_test)]  # the batch, repeating images if the split is small
    memory_reset = reset_peak_rss()
    start = time.perf_counter()
    with contextlib.ExitStack() as active:
        # a load that fails releases what it made (onnx2tf's working folder): the failure is the finding
        active.enter_context(runner)
        load_time = time.perf_counter() - start
        peaks = {"load": peak_rss_bytes()}
        reset_peak_rss()
        stats, setup_s, checked = _time(runner, x_batch, method)
        peaks["inference"] = peak_rss_bytes()
        reset_peak_rss()
        logits = runner.infer(x_test)
        peaks["test_split"] = peak_rss_bytes()
        if not np.isfinite(logits).all():
            raise FloatingPointError(f"{int((~np.isfinite(logits)).sum())} non-finite logits on the test split")
        info = runner.info()
        extra = list(getattr(runner, "figures", list)())  # figures a runner measures itself (a page's load steps)
        if parking.park(parking_key, runner):  # for the transfer job the study runs next on this worker
            active.pop_all()  # parked: it stays active when the block ends

    logits_path = ctx.artifacts.put_array(logits.astype(np.float32))
    ctx.outputs.update(logits=logits_path, runtime=info)
    if labelled(ctx):  # a check's unlabelled images: agreement with the source is the compare job's
        ctx.measure("accuracy", top1_accuracy(logits, data.test.y), "fraction", artifact=logits_path,
                    method={"images": len(data.test.y), "split": "test", **info})
    ctx.measure("model_size", artifact_size_bytes(path), "bytes", artifact=artifact)
    ctx.measure("load_time", load_time, "s", method={**info, "scope": "runner.activate(): load and session creation"})
    for metric, value, unit in extra:
        ctx.measure(metric, value, unit, method=info)

    latency = latency_record(method, stats, info, output_checked=checked)
    for name in LATENCY_STATS:
        value = getattr(stats, name)
        if value is not None:  # the CI needs at least 36 repeats (6 blocks) at 95%
            ctx.measure(f"latency_{name}", value, "ms", method=latency)
    ctx.measure("latency_p50_per_image", stats.p50_per_image, "ms", method=latency)
    if stats.first_call_ms is not None:
        ctx.measure("first_inference", stats.first_call_ms, "ms",
                    method={**latency, "scope": "the first call after load, inputs already placed",
                            "predictor_setup_ms": round(setup_s * 1e3, 6)})

    api = "VmHWM" if memory_reset else "ru_maxrss (not reset: process-wide)"
    ctx.measure("peak_rss_load", peaks["load"], "bytes", method={"api": api, "scope": "load"})
    ctx.measure("peak_rss_inference", peaks["inference"], "bytes",
                method={"api": api, "scope": f"latency measurement at batch size {method.batch_size}"})
    ctx.measure("peak_rss", max(peaks.values()), "bytes",
                method={"api": api, "scope": "load + latency measurement + full test split"})


def _time(runner: Runner, x_batch: np.ndarray, method: LatencyMethod) -> tuple[LatencyStats, float, bool]:
    """Latency of `runner` on `x_batch` by `method`; the predictor's setup time; whether its output was checked.

    A runner that times itself where it runs (`timings`: a browser page, a phone) hands back per-call
    times, summarised here by the same rules; every other runner's `predictor` is timed in this process.
    """
    start = time.perf_counter()
    call = runner.predictor(x_batch)  # inputs converted and placed here, before any clock starts
    setup_s = time.perf_counter() - start
    timings = getattr(runner, "timings", None)
    if callable(timings):
        stats = summarize(method=method, **timings(x_batch, method.to_dict()))
    else:
        stats = measure_latency(call, method)
    return stats, setup_s, _check_output(call(), runner.infer(x_batch))


def _check_output(out: Any, expected: np.ndarray) -> bool:
    """After the clock: the timed call computes what `infer` computes. False where its output is opaque."""
    try:
        got = np.asarray(out[0] if isinstance(out, list | tuple) else out, dtype=np.float32)
    except (TypeError, ValueError, RuntimeError):
        return False
    if got.shape != expected.shape:
        return False
    if not np.isfinite(got).all():
        raise FloatingPointError("the timed call returned non-finite logits")
    scale = max(float(np.abs(expected).max()), 1.0)
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-3 * scale):
        gap = float(np.abs(got - expected).max())
        raise RuntimeError(f"the timed call's logits differ from infer's by up to {gap:.3g}: "
                           "its latency would not be that of the evaluated model")
    return True


def latency_record(method: LatencyMethod, stats: LatencyStats, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The `method` of every latency row: the rules, what the measurement achieved, and the runtime's facts."""
    return {
        **info,  # runtime, version, api, threads, intra/inter-op threads in effect, delegate
        "delegate": info.get("delegate"),  # None: the runner did not say (never assumed "none")
        "intra_op_threads": info.get("intra_op_threads"),
        "inter_op_threads": info.get("inter_op_threads"),
        # the rules: batch_size, warmup, warmup_time_s, min_repeats, min/max_time_s, ci_level, max_ci_rel_width
        **method.to_dict(),
        # what they achieved: repeats, warmup_calls/s, elapsed_s, ci_coverage, ci_rel_width, ci_blocks, converged,
        # unmet, and the clock: its name, its tick (clock_tick_ns) and calls_per_sample
        **stats.method_fields(),
        **extra,
    }
