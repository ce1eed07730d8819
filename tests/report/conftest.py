"""A realistic run for the report tests: digits, two models trained in PyTorch, moved to ONNX Runtime.

lenet1 converts cleanly and agrees everywhere; lenet5 converts with the dynamo exporter but flips 3 of
360 test labels; lenet5's conversion through the TorchScript exporter fails with a multi-line error.

The rows have the shape the study's jobs write (study/plan.py, study/jobs/): a native cell's target is
its own framework; a conversion's target is the format it makes (`onnx`), an evaluation's the runtime
(`onnxruntime`); a job that fails as a whole leaves one row whose metric is its kind, and the jobs
after it are skipped (no rows).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dlcompat.metrics.record import COLUMNS

RUN_ID = "3f2a9c1b"
DYNAMO = "torch.onnx (dynamo)"
TORCHSCRIPT = "torch.onnx (torchscript)"
CONVERSION_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "dlcompat/converters/torch_onnx.py", line 88, in convert\n'
    "    torch.onnx.export(model, sample, path, dynamo=False)\n"
    "torch.onnx.errors.UnsupportedOperatorError: Exporting the operator 'aten::max_pool2d_with_indices'"
    " to ONNX opset version 9 is not supported | see https://github.com/pytorch/pytorch/issues"
)
LATENCY_METHOD = {"api": "onnxruntime.InferenceSession.run", "batch_size": 1, "warmup": 10,
                  "repeats": 50, "threads": 1, "converged": True, "clock": "time.perf_counter_ns"}
TORCH_LATENCY_METHOD = {**LATENCY_METHOD, "api": "torch.inference_mode forward"}
CONFIG_TOML = """\
name = "quick"
datasets = ["digits"]
models = ["lenet1", "lenet5"]
frameworks = ["pytorch"]
targets = ["onnxruntime"]
seeds = [0]

[train]
epochs = 5
batch_size = 64
"""


def row(metric: str, value: float | None, unit: str = "", *, model: str = "lenet1", kind: str = "evaluate",
        target: str = "pytorch", variant: str = "", status: str = "ok", error: str = "",
        method: dict[str, Any] | None = None, job: str = "", seed: int | None = 0) -> dict[str, Any]:
    out = {
        "run": RUN_ID,
        "job": job or f"{kind}-{model}-{target}-{variant or 'default'}",
        "kind": kind,
        "dataset": "digits",
        "model": model,
        "framework": "pytorch",
        "seed": seed,
        "target": target,
        "variant": variant,
        "metric": metric,
        "value": value,
        "unit": unit,
        "status": status,
        "error": error,
        "artifact": f"artifacts/{model}/{target}.bin" if status == "ok" else "",
        "method": dict(method or {}),
    }
    assert tuple(out) == COLUMNS
    return out


def evaluation(model: str, target: str, variant: str, *, accuracy: float, size: float, p50: float,
               load: float) -> list[dict[str, Any]]:
    method = LATENCY_METHOD if target == "onnxruntime" else TORCH_LATENCY_METHOD
    common = {"model": model, "target": target, "variant": variant}
    return [
        row("accuracy", accuracy, "fraction", method={"images": 360, "split": "test"}, **common),
        row("model_size", size, "bytes", **common),
        row("load_time", load, "s", **common),
        row("latency_p10", p50 * 0.92, "ms", method=method, **common),
        row("latency_p50", p50, "ms", method=method, **common),
        row("latency_p90", p50 * 1.21, "ms", method=method, **common),
        row("latency_p99", p50 * 1.6, "ms", method=method, **common),
        row("latency_mean", p50 * 1.04, "ms", method=method, **common),
        row("latency_std", p50 * 0.08, "ms", method=method, **common),
        row("latency_min", p50 * 0.9, "ms", method=method, **common),
        row("first_inference", p50 * 40, "ms", method=method, **common),
        row("peak_rss", 312_000_000 + size, "bytes",
            method={"api": "VmHWM", "scope": "load + full test split + latency loop"}, **common),
    ]


def comparison(model: str, variant: str, *, flips: int, max_diff: float, mean_diff: float,
               total: int = 360) -> list[dict[str, Any]]:
    common = {"model": model, "target": "onnxruntime", "variant": variant, "kind": "compare",
              "method": {"images": total, "flip": "argmax differs"}}
    return [
        row("label_flips", flips, "count", **common),
        row("label_flip_rate", flips / total, "fraction", **common),
        row("max_abs_logit_diff", max_diff, "", **common),
        row("mean_abs_logit_diff", mean_diff, "", **common),
    ]


def training(model: str, *, seconds: float, loss: float, epochs: int = 5) -> list[dict[str, Any]]:
    common = {"model": model, "kind": "train", "method": {"epochs": epochs, "batch_size": 64}}
    return [
        row("train_time", seconds, "s", **common),
        row("train_time_per_epoch", seconds / epochs, "s", **common),
        row("final_train_loss", loss, "", **common),
        row("val_accuracy", 1 - loss, "fraction", **common),
    ]


def conversion(model: str, variant: str, *, seconds: float, size: float) -> list[dict[str, Any]]:
    common = {"model": model, "kind": "convert", "target": "onnx", "variant": variant,
              "method": {"converter": "torch.onnx", "tool": "torch.onnx.export", "tool_version": "2.13.0",
                         "path": ["torch.onnx"]}}
    return [row("conversion_time", seconds, "s", **common), row("converted_size", size, "bytes", **common)]


def failed_conversion(model: str, variant: str) -> list[dict[str, Any]]:
    """A conversion job that failed: one row, metric = kind; its evaluate and compare jobs were skipped."""
    return [row("convert", None, "", model=model, kind="convert", target="onnx", variant=variant,
                status="failed", error=CONVERSION_ERROR)]


def build_rows() -> list[dict[str, Any]]:
    return [
        *training("lenet1", seconds=4.2, loss=0.081),
        *training("lenet5", seconds=9.7, loss=0.034),
        *evaluation("lenet1", "pytorch", "", accuracy=0.9722, size=27_650, p50=0.081, load=0.012),
        *evaluation("lenet5", "pytorch", "", accuracy=0.9861, size=248_100, p50=0.142, load=0.015),
        *conversion("lenet1", DYNAMO, seconds=1.9, size=31_204),
        *conversion("lenet5", DYNAMO, seconds=2.6, size=251_877),
        *evaluation("lenet1", "onnxruntime", DYNAMO, accuracy=0.9722, size=31_204, p50=0.029, load=0.021),
        *evaluation("lenet5", "onnxruntime", DYNAMO, accuracy=0.9806, size=251_877, p50=0.047, load=0.024),
        *comparison("lenet1", DYNAMO, flips=0, max_diff=3.1e-6, mean_diff=4.2e-7),
        *comparison("lenet5", DYNAMO, flips=3, max_diff=2.37, mean_diff=0.0021),
        *failed_conversion("lenet5", TORCHSCRIPT),
    ]


def build_run() -> dict[str, Any]:
    return {
        "id": RUN_ID,
        "name": "quick",
        "created": "2026-11-24T19:00:00+00:00",
        "status": "complete",
        "config_toml": CONFIG_TOML,
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
            "cpu": "AMD EPYC 7B13",
            "cpu_count": 2,
            "packages": {"torch": "2.13.0", "onnxruntime": "1.32.0", "onnx": "1.23.2", "numpy": "2.3.4"},
        },
        "jobs": {"total": 14, "ok": 11, "failed": 1, "unavailable": 0, "cached": 0, "skipped": 2},
        "seeds": [0],
        "threads": 1,
    }


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    return copy.deepcopy(build_rows())


@pytest.fixture
def run() -> dict[str, Any]:
    return copy.deepcopy(build_run())
