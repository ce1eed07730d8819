"""A realistic run for the report tests: digits, two models trained in PyTorch, moved to ONNX Runtime.

lenet1 converts cleanly and agrees everywhere; lenet5 converts with the dynamo exporter but flips 3 of
360 test labels; lenet5's conversion through the TorchScript exporter fails with a multi-line error.

`study_rows` extends it to every section of the report, in the shapes the jobs of the `quick` study
wrote (copied from a real run's database): the same models trained in TensorFlow too, moved between
frameworks by weight transfer and through onnx2tf (with the moves the failed conversion stopped), an
unavailable move into JAX, LiteRT deployments in fp32 and int8-full, ONNX Runtime Web in two backends
(one of them failing), and FGSM attacks transferred to the ONNX Runtime deployment.

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
        method: dict[str, Any] | None = None, job: str = "", seed: int | None = 0,
        framework: str = "pytorch", artifact: str | None = None) -> dict[str, Any]:
    out = {
        "run": RUN_ID,
        "job": job or f"{kind}-{model}-{framework}-{target}-{variant or 'default'}",
        "kind": kind,
        "dataset": "digits",
        "model": model,
        "framework": framework,
        "seed": seed,
        "target": target,
        "variant": variant,
        "metric": metric,
        "value": value,
        "unit": unit,
        "status": status,
        "error": error,
        "artifact": (f"artifacts/{model}/{target}.bin" if status == "ok" else "") if artifact is None else artifact,
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


# -- the whole study: migration, mobile and web deployment, attacks ---------------------------------------

ONNX2TF = f"{DYNAMO} → onnx2tf"
LITERT_FP32, LITERT_INT8 = "torch.tflite (fp32)", "torch.tflite (int8-full)"
WEBGL_ERROR = ("RuntimeError: ortweb webgl in the page, the latency loop: Error: input tensor[0] check failed: "
               "expected shape '[,1,28,28]' but got [1,1,28,28]")
NO_CONVERTER_INTO_JAX = "no converter into jax exists (none takes ONNX or any other format to it)"
WEB_METHOD = {"api": "onnxruntime-web InferenceSession.run", "backend": "wasm", "browser": "Chromium 156.0.8078.79",
              "npm": {"onnxruntime-web": "1.30.0"}, "runtime": "ortweb", "version": "1.30.0", "batch_size": 1,
              "warmup": 10, "repeats": 2408, "threads": 1}


def evaluated(model: str, framework: str, target: str, variant: str, *, accuracy: float, size: float, p50: float,
              load: float, web: bool = False) -> list[dict[str, Any]]:
    """An evaluate job's rows in any framework or runtime (evaluate.py): figures, latency and memory."""
    method = WEB_METHOD if web else {**TORCH_LATENCY_METHOD, "api": f"{target} predict"}
    common = {"model": model, "framework": framework, "target": target, "variant": variant}
    out = [
        row("accuracy", accuracy, "fraction", method={"images": 359, "split": "test", **method},
            artifact=f"objects/{model[-1]}a/{framework}-{target}-logits.npy", **common),
        row("model_size", size, "bytes", **common),
        row("load_time", load, "s", **common),
        *(row(metric, p50 * factor, "ms", method=method, artifact="", **common) for metric, factor in (
            ("latency_p10", 0.93), ("latency_p50", 1.0), ("latency_p90", 1.18), ("latency_p99", 1.5),
            ("latency_mean", 1.03), ("latency_std", 0.07), ("latency_min", 0.9), ("latency_p50_per_image", 1.0))),
        row("peak_rss", 420_000_000 + size, "bytes", method={"api": "VmHWM"}, artifact="", **common),
    ]
    if web:
        out += [row("browser_start_time", 0.41, "s", method=method, artifact="", **common),
                row("model_download_time", 0.048, "s", method=method, artifact="", **common)]
    return out


def compared(model: str, framework: str, target: str, variant: str, *, flips: int, source: float,
             max_diff: float, total: int = 359) -> list[dict[str, Any]]:
    """A compare job's rows (compare.py): flips, top-5, logit differences, tolerances, the accuracy change."""
    logits = f"objects/{model[-1]}b/{framework}-{target}-{len(variant)}.npy"
    method = {"flip": "argmax differs", "images": total, "source_logits": f"objects/{model[-1]}a/{framework}.npy",
              "target_logits": logits, "top5": "equal sets of the 5 largest logits"}
    common = {"model": model, "framework": framework, "target": target, "variant": variant, "kind": "compare",
              "method": method, "artifact": logits}
    target_accuracy = source - flips / total / 2
    return [
        row("label_flips", flips, "count", **common),
        row("label_flip_rate", flips / total, "fraction", **common),
        row("top5_agreement", 1.0, "fraction", **common),
        row("max_abs_logit_diff", max_diff, "", **common),
        row("mean_abs_logit_diff", max_diff / 20, "", **common),
        row("p99_abs_logit_diff", max_diff / 2, "", **common),
        row("min_atol", max_diff, "", **common),
        row("min_rtol", max_diff * 3, "", **common),
        row("source_accuracy", source, "fraction", **common),
        row("accuracy_change", target_accuracy - source, "fraction", **common),
    ]


def curves(model: str, framework: str, *, seconds: float, loss: float) -> list[dict[str, Any]]:
    """A train job's per-epoch curves and peak memory (train.py)."""
    common = {"model": model, "framework": framework, "target": framework, "kind": "train", "artifact": ""}
    out = [row("train_peak_rss", 610_000_000, "bytes", method={"epochs": 3}, **common)]
    for epoch in range(3):
        method = {"epochs": 3, "epoch": epoch}
        out += [row("epoch_train_loss", loss * (3 - epoch), "", method=method, **common),
                row("epoch_time", seconds / 3, "s", method=method, **common)]
    return out


def trained(model: str, framework: str, *, seconds: float, loss: float, accuracy: float) -> list[dict[str, Any]]:
    """A train job (train.py) with its per-epoch curves, and the native evaluation of the trained model."""
    common = {"model": model, "framework": framework, "target": framework, "kind": "train",
              "method": {"epochs": 3, "batch_size": 32}}
    return [
        row("train_time", seconds, "s", artifact=f"objects/{model[-1]}c/{framework}-model", **common),
        row("train_time_per_epoch", seconds / 3, "s", **common),
        row("final_train_loss", loss, "", **common),
        *curves(model, framework, seconds=seconds, loss=loss),
        *evaluated(model, framework, framework, "", accuracy=accuracy, size=250_000, p50=0.12, load=0.02),
    ]


def attacked(model: str, framework: str, epsilon: float, robust: float, clean: float) -> list[dict[str, Any]]:
    """An FGSM attack job's rows (attack.py) at one ε, and its transfer to the ONNX Runtime deployment."""
    setting = f"fgsm eps={epsilon:g}"
    adversarial = f"objects/{model[-1]}d/{framework}-fgsm-{epsilon:g}.npz"
    method = {"attack": "fgsm", "epsilon": epsilon, "clean_accuracy": clean, "images": 100, "seed": 0,
              "estimator": "art.PyTorchClassifier", "versions": {"art": "1.20.1"}}
    common = {"model": model, "framework": framework, "target": framework, "variant": setting, "kind": "attack",
              "method": method, "artifact": adversarial}
    success = 1 - robust / clean
    out = [row("attack_success_rate", success, "fraction", **common),
           row("robust_accuracy", robust, "fraction", **common),
           row("perturbation_l2_mean", epsilon * 20, "", **common),
           row("perturbation_linf_max", epsilon, "", **common),
           row("attack_time_per_image", 0.0004, "s", **common)]
    if framework == "pytorch":
        transfer = {"attack": "fgsm", "attack_variant": setting, "epsilon": epsilon, "route": DYNAMO,
                    "images": 90, "adversarial_set": adversarial}
        common = {"model": model, "framework": framework, "target": "onnxruntime", "kind": "transfer",
                  "variant": f"{setting} · {DYNAMO}", "method": transfer, "artifact": adversarial}
        out += [row("transfer_success_rate", success * 0.97, "fraction", **common),
                row("transfer_source_success_rate", success, "fraction", **common),
                row("transfer_rate", 0.97, "fraction", **common),
                row("adversarial_agreement", 0.99 if epsilon > 0.1 else 1.0, "fraction", **common)]
    return out


def build_study_rows() -> list[dict[str, Any]]:
    out = build_rows()
    out += [*curves("lenet1", "pytorch", seconds=4.2, loss=0.081),
            *curves("lenet5", "pytorch", seconds=9.7, loss=0.034),
            *trained("lenet1", "tensorflow", seconds=3.2, loss=0.092, accuracy=0.9694),
            *trained("lenet5", "tensorflow", seconds=7.9, loss=0.041, accuracy=0.9833)]
    for model, source in (("lenet1", 0.9722), ("lenet5", 0.9861)):
        for target in ("tensorflow", "theano"):  # weight transfer: exact up to float rounding
            out += evaluated(model, "pytorch", target, "weight transfer", accuracy=source, size=250_000, p50=0.2,
                             load=0.05)
            out += compared(model, "pytorch", target, "weight transfer", flips=0, source=source, max_diff=9.5e-6)
        out.append(row("unavailable", None, model=model, kind="unavailable", target="jax", variant="converter",
                       status="unavailable", error=NO_CONVERTER_INTO_JAX, artifact=""))
        out += evaluated(model, "pytorch", "tensorflow", ONNX2TF, accuracy=source, size=260_000, p50=0.3, load=0.4)
        out += compared(model, "pytorch", "tensorflow", ONNX2TF, flips=2 if model == "lenet5" else 0, source=source,
                        max_diff=1.1e-5 if model == "lenet1" else 0.61)
        tf_source = 0.9694 if model == "lenet1" else 0.9833
        out += evaluated(model, "tensorflow", "pytorch", "weight transfer", accuracy=tf_source, size=250_000,
                         p50=0.15, load=0.02)
        out += compared(model, "tensorflow", "pytorch", "weight transfer", flips=0, source=tf_source, max_diff=7e-6)
        for variant, size, flips in ((LITERT_FP32, 244_000, 0), (LITERT_INT8, 68_000, 4)):
            convert = {"converter": "torch.tflite", "path": ["torch.tflite"], "tool": "litert-torch",
                       "tool_version": "0.8.0"}
            out += [row("conversion_time", 3.1, "s", model=model, kind="convert", target="tflite", variant=variant,
                        method=convert),
                    row("converted_size", size, "bytes", model=model, kind="convert", target="tflite", variant=variant,
                        method=convert)]
            out += evaluated(model, "pytorch", "litert", variant, accuracy=source - flips / 718, size=size, p50=0.02,
                             load=0.001)
            out += compared(model, "pytorch", "litert", variant, flips=flips, source=source, max_diff=0.2 + flips)
        for backend, p50 in (("wasm", 0.04), ("wasm-threads", 0.095)):
            variant = f"{DYNAMO} · {backend}"
            out += evaluated(model, "pytorch", "ortweb", variant, accuracy=source, size=22_269, p50=p50, load=2.3,
                             web=True)
            out += compared(model, "pytorch", "ortweb", variant, flips=0, source=source, max_diff=2e-6)
        out.append(row("evaluate", None, model=model, target="ortweb", variant=f"{DYNAMO} · webgl", status="failed",
                       error=WEBGL_ERROR, artifact=""))
        for epsilon, robust in ((0.05, 0.62), (0.1, 0.31), (0.2, 0.05)):
            out += attacked(model, "pytorch", epsilon, robust, source)
            out += attacked(model, "tensorflow", epsilon, robust * 0.9, 0.97)
    return out


def build_study_run() -> dict[str, Any]:
    """The run's info as `dlcompat report` gives it: with each job's toolchain environment and the artifact root."""
    rows = build_study_rows()
    environments = {"main": {"python": "3.11.7", "packages": {"torch": "2.13.0+cpu", "onnxruntime": "1.32.0"}},
                    "onnx2tf": {"python": "3.12.1", "packages": {"onnx2tf": "2.6.9", "tensorflow": "2.21.0"}}}
    job_environments = {r["job"]: ("onnx2tf" if "onnx2tf" in r["variant"] else "main",
                                   environments["onnx2tf" if "onnx2tf" in r["variant"] else "main"]) for r in rows}
    run = build_run()
    run["environment"]["latency_method"] = {"batch_size": 1, "warmup": 10, "warmup_time_s": 0.05, "min_repeats": 50,
                                            "min_time_s": 0.2, "ci_level": 0.95, "max_ci_rel_width": 0.05,
                                            "max_time_s": 5.0}
    run["environment"]["blas"] = "OpenBLAS 0.3.21 (Haswell, pthreads)"
    return {**run, "job_environments": job_environments, "artifacts": "/data/study/artifacts"}


@pytest.fixture
def study_rows() -> list[dict[str, Any]]:
    return copy.deepcopy(build_study_rows())


@pytest.fixture
def study_run() -> dict[str, Any]:
    return copy.deepcopy(build_study_run())


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium (never a downloaded one); the test is skipped where there is none."""
    from dlcompat.frameworks.base import Unavailable
    from dlcompat.runtimes.browser.chromium import chromium_executable

    try:
        return chromium_executable()
    except Unavailable as exc:
        pytest.skip(str(exc))
