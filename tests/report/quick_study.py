"""A run the size of the `quick` study, for the report's budgets: every framework, route, runtime and attack.

The shapes are conftest.py's (copied from a real run's jobs); this only multiplies them the way the quick
preset does: LeNet-1 and LeNet-5 trained in five frameworks, each moved into every other by weight transfer
and through the ONNX converters, deployed to ONNX Runtime, ONNX Runtime Web and TensorFlow.js (one row per
backend, WebGL failing), LiteRT (four precisions), ExecuTorch (three) and Core ML (unavailable off macOS),
attacked by FGSM and PGD at three budgets, and each adversarial set run on every model derived from it.
The figures vary deterministically (a seeded generator), so the report is the same on every run.
"""

from __future__ import annotations

import random
from typing import Any

from dlcompat.report.targets import STEP_SEPARATOR

from .conftest import (
    CONVERSION_ERROR,
    NO_CONVERTER_INTO_JAX,
    WEBGL_ERROR,
    attacked,
    build_study_run,
    compared,
    evaluated,
    row,
    trained,
)

MODELS = ("lenet1", "lenet5")
FRAMEWORKS = ("pytorch", "tensorflow", "jax", "pytensor", "theano")
#: each source's routes to ONNX (the second one of PyTorch fails, as the TorchScript exporter does)
ONNX_ROUTES = {"pytorch": ("torch.onnx (dynamo)", "torch.onnx (torchscript)"),
               "tensorflow": ("keras.onnx (keras)", "keras.onnx (tf2onnx)"),
               "jax": ("jax.onnx (tflite-tf2onnx)", "jax.onnx (tf2onnx)")}
#: the frameworks a converted ONNX model lands in, and the runtime that runs it there
LANDINGS = {"pytorch": "onnx2torch", "tensorflow": "onnx2tf"}
MOBILE = {"pytorch": (("litert", "torch.tflite", ("fp32", "int8-dynamic", "int8-full")),
                      ("executorch", "torch.pte", ("fp32", "int8", "portable")),
                      ("coreml", "torch.coreml", ("fp32", "fp16", "int8-weights"))),
          "tensorflow": (("litert", "keras.tflite", ("fp32", "fp16", "int8-dynamic", "int8-full")),
                         ("coreml", "keras.coreml", ("fp32", "fp16", "int8-weights"))),
          "jax": (("litert", "jax.tflite", ("fp32", "fp16", "int8-dynamic", "int8-full")),)}
WEB = (("ortweb", ("wasm", "wasm-threads", "webgl")), ("tfjs", ("wasm", "webgl")))
ATTACKS = (("fgsm", (0.05, 0.1, 0.2)), ("pgd", (0.05, 0.1, 0.2)))
CORE_ML_OFF_MACOS = "Core ML runs only on macOS; this machine is Linux (the package was converted and kept)"


def _moves(rng: random.Random, model: str, source: str, accuracy: float) -> list[dict[str, Any]]:
    """Weight transfer into every other framework, and the ONNX routes into those a converter reaches."""
    out: list[dict[str, Any]] = []
    for target in (f for f in FRAMEWORKS if f != source):
        out += evaluated(model, source, target, "weight transfer", accuracy=accuracy, size=250_000, p50=0.2,
                         load=0.05)
        out += compared(model, source, target, "weight transfer", flips=0, source=accuracy,
                        max_diff=rng.uniform(1e-6, 1e-5))
        if target not in LANDINGS:
            out.append(row("unavailable", None, model=model, framework=source, kind="unavailable", target=target,
                           variant="converter", status="unavailable",
                           error=NO_CONVERTER_INTO_JAX.replace("jax", target), artifact=""))
    for number, route in enumerate(ONNX_ROUTES.get(source, ())):
        out += _conversion(rng, model, source, "onnx", route, failed=source == "pytorch" and number == 1)
        if source == "pytorch" and number == 1:
            continue
        for target, landing in LANDINGS.items():
            if target == source:
                continue
            variant = f"{route}{STEP_SEPARATOR}{landing}"
            flips = rng.choice((0, 0, 1, 3))
            out += evaluated(model, source, target, variant, accuracy=accuracy - flips / 718, size=260_000,
                             p50=rng.uniform(0.1, 0.4), load=rng.uniform(0.1, 0.5))
            out += compared(model, source, target, variant, flips=flips, source=accuracy,
                            max_diff=rng.uniform(1e-6, 0.7))
    return out


def _conversion(rng: random.Random, model: str, source: str, target: str, variant: str, *,
                failed: bool = False) -> list[dict[str, Any]]:
    common = {"model": model, "framework": source, "kind": "convert", "target": target, "variant": variant}
    if failed:
        return [row("convert", None, status="failed", error=CONVERSION_ERROR, artifact="", **common)]
    method = {"converter": variant.split(" ")[0], "tool": variant.split(" ")[0], "tool_version": "1.2.3"}
    return [row("conversion_time", rng.uniform(0.5, 9.0), "s", method=method, **common),
            row("converted_size", rng.uniform(20_000, 260_000), "bytes", method=method, **common)]


def _deployments(rng: random.Random, model: str, source: str, accuracy: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for route in ONNX_ROUTES.get(source, ())[:1]:
        for runtime, backends in (("onnxruntime", ("",)), *WEB):
            for backend in backends:
                variant = f"{route} · {backend}" if backend else route
                if backend == "webgl":
                    out.append(row("evaluate", None, model=model, framework=source, target=runtime, variant=variant,
                                   status="failed", error=WEBGL_ERROR, artifact=""))
                    continue
                out += evaluated(model, source, runtime, variant, accuracy=accuracy, size=rng.uniform(2e4, 3e5),
                                 p50=rng.uniform(0.02, 0.3), load=rng.uniform(0.01, 2.5), web=bool(backend))
                out += compared(model, source, runtime, variant, flips=rng.choice((0, 0, 0, 2)), source=accuracy,
                                max_diff=rng.uniform(1e-6, 1e-3))
    for runtime, converter, precisions in MOBILE.get(source, ()):
        for precision in precisions:
            variant = f"{converter} ({precision})"
            out += _conversion(rng, model, source, runtime, variant)
            if runtime == "coreml":
                out.append(row("evaluate", None, model=model, framework=source, target=runtime, variant=variant,
                               status="unavailable", error=CORE_ML_OFF_MACOS, artifact=""))
                continue
            flips = 0 if precision in ("fp32", "portable") else rng.choice((0, 2, 5))
            out += evaluated(model, source, runtime, variant, accuracy=accuracy - flips / 718,
                             size=rng.uniform(6e4, 2.5e5), p50=rng.uniform(0.01, 0.1), load=rng.uniform(1e-3, 0.1))
            out += compared(model, source, runtime, variant, flips=flips, source=accuracy,
                            max_diff=rng.uniform(0.01, 3.0))
    return out


def _attacks(model: str, source: str, accuracy: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for attack, epsilons in ATTACKS:
        for epsilon, robust in zip(epsilons, (0.62, 0.31, 0.05), strict=True):
            rows = attacked(model, source, epsilon, robust * (0.5 if attack == "pgd" else 1.0), accuracy)
            for r in rows:
                r["variant"] = r["variant"].replace("fgsm", attack)
                r["method"]["attack"] = attack
            out += rows
    return out


def _transfers(model: str, source: str) -> list[dict[str, Any]]:
    """Each adversarial set of the source run on every model derived from it (one transfer job per model)."""
    derived = [(t, "weight transfer") for t in FRAMEWORKS if t != source]
    derived += [(runtime, route) for route in ONNX_ROUTES.get(source, ())[:1]
                for runtime in ("onnxruntime", "ortweb", "tfjs", "litert")]
    out: list[dict[str, Any]] = []
    for target, route in derived:
        for attack, epsilons in ATTACKS:
            for epsilon in epsilons:
                setting = f"{attack} eps={epsilon:g}"
                method = {"attack": attack, "attack_variant": setting, "epsilon": epsilon, "route": route,
                          "images": 90, "adversarial_set": f"objects/{model[-1]}d/{source}-{setting}.npz"}
                common = {"model": model, "framework": source, "target": target, "kind": "transfer",
                          "variant": f"{setting} · {route}", "method": method, "artifact": method["adversarial_set"]}
                out += [row("transfer_success_rate", 0.5 + epsilon, "fraction", **common),
                        row("transfer_source_success_rate", 0.5 + epsilon, "fraction", **common),
                        row("transfer_rate", 0.97, "fraction", **common),
                        row("adversarial_agreement", 0.99 if epsilon > 0.1 else 1.0, "fraction", **common)]
    return out


def build_quick_study_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    for model in MODELS:
        for number, source in enumerate(FRAMEWORKS):
            accuracy = 0.96 + 0.004 * number + (0.01 if model == "lenet5" else 0.0)
            out += trained(model, source, seconds=3.0 + number, loss=0.03 + 0.01 * number, accuracy=accuracy)
            out += _moves(rng, model, source, accuracy)
            out += _deployments(rng, model, source, accuracy)
            out += _attacks(model, source, accuracy)
            out += _transfers(model, source)
    return out


def build_quick_study_run() -> dict[str, Any]:
    run = build_study_run()
    run["jobs"] = {"total": 657, "ok": 540, "failed": 25, "unavailable": 72, "cached": 0, "skipped": 20}
    return run
