"""Benchmark: localise seeded faults injected into real converted artifacts, and measure the quantised floors.

Sources: LeNet-5 trained briefly on real MNIST and ResNet-20 trained briefly on real CIFAR-10, both in PyTorch; the
same weights in Keras. Artifacts: ONNX from PyTorch (torch.onnx, dynamo), ONNX from Keras (tf2onnx), and LiteRT
``.tflite`` fp32 / fp16 / int8 (full integer) from the ``keras.tflite`` edge. Each honest artifact is localised
(a false alarm is any layer beyond noise in an un-injected float32 / float16 conversion, or an int8 tensor beyond
the int8 floor in quantisation steps); then faults are injected into copies, with the `onnx` package for ONNX and
LiteRT's flatbuffer object API (`ai_edge_litert.schema_py_generated`, the schema `findings.graph` reads) for
``.tflite``, each at a canonical layer found through the honest artifact's alignment (never by value):

==========================  =====================================================  ===================
kind                        what is changed in the copy                            expected type
==========================  =====================================================  ===================
bn-eps                      a folded conv + batch norm refolded with another eps   hyper-parameter
kernel-transposed           a convolution's kernel swapped kh <-> kw               layout/transpose
weights-fp16                one layer's float32 weights rounded to float16          quantisation
pad-changed                 a convolution's pads moved (same output shape)         hyper-parameter
int8-scale                  an int8 tensor's scale multiplied (weights or output)  quantisation
relu-dropped                a ReLU removed (ONNX) / a fused ReLU set to NONE       operator semantics
flatten-order               the features reach the dense layer in the other order  layout/transpose
input-normalisation         (x - mean) / std inserted before the first layer       input preprocessing
==========================  =====================================================  ===================

A fault is *ranked first* when the first layer beyond noise is the injected layer or the fused group (one operator)
that computes it; for ``flatten-order`` the injected layer is the dense layer after the flatten (the flatten's
values are right, in an order the dense layer's columns do not expect). Each localisation (alignment, the runtime's
tensors, the float64 reference, the judgement and the diagnosis) is timed; the floors are measured once per source
and timed apart. The quantised floors' measurements are printed at the end: the float16 hops' ratios to the float32
and float16 floors, and the int8 hops' step counts per layer (the figure `metrics.noise.INT8_MEASURED_MAX_STEPS`
holds).

Usage: nice -n 10 .venv/bin/python benchmarks/localisation.py [--data-dir ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.findings.faults

from tests.findings.faults import onnx_faults, tflite_faults  # noqa: E402

from dlcompat.data.batching import to_float  # noqa: E402
from dlcompat.data.calibration import calibration_images  # noqa: E402
from dlcompat.data.registry import load_dataset  # noqa: E402
from dlcompat.findings.align import align_file  # noqa: E402
from dlcompat.findings.diagnose import diagnose  # noqa: E402
from dlcompat.findings.localise import localise, read_tensors  # noqa: E402
from dlcompat.frameworks.base import TrainSettings  # noqa: E402
from dlcompat.frameworks.registry import make_adapter  # noqa: E402
from dlcompat.metrics.noise import (  # noqa: E402
    INT8_FLOOR_STEPS,
    INT8_MEASURED_MAX_STEPS,
    K_NOISE,
    WELL_QUANTISED_STEPS,
    float16_floor,
    measure_noise_floor,
)
from dlcompat.zoo.reference import forward  # noqa: E402
from dlcompat.zoo.registry import build_spec  # noqa: E402

#: (dataset, model, training images, epochs, images localised on)
MODELS = (("mnist", "lenet5", 2000, 1, 32), ("cifar10", "resnet20", 2000, 1, 16))
LIMITS = {"lenet5": 30.0, "resnet20": 120.0}


@dataclass
class Source:
    """One source model (its weights, images and floors) and its artifacts: {format: (path, input layout, floor)}."""

    model: str
    spec: Any
    weights: dict[str, np.ndarray]
    x: np.ndarray
    artifacts: dict[str, tuple[Path, str, Any]]
    timings: dict[str, float]


@dataclass
class Row:
    model: str
    format: str
    kind: str
    injected: str
    expected: str
    first: str | None
    group: tuple[str, ...]
    found: str | None
    ranked_first: bool
    type_right: bool
    seconds: float
    ratio: float | None = None  # the first divergent layer's error / its floor (int8: steps / the int8 floor's)
    evidence: str = ""


def build_sources(data_dir: Path, root: Path) -> list[Source]:
    sources = []
    for dataset, name, train, epochs, images in MODELS:
        t0 = time.perf_counter()
        data = load_dataset(dataset, data_dir, limit_train=train, limit_test=images, download=False)
        torch_adapter = make_adapter("pytorch", threads=1)
        spec = build_spec(name, data.input_shape, data.num_classes)
        model = torch_adapter.build(spec, seed=0)
        torch_adapter.train(model, spec, (to_float(data.train.x), data.train.y), (to_float(data.test.x), data.test.y),
                            TrainSettings(epochs=epochs, batch_size=32, lr=0.02, seed=0))
        weights = torch_adapter.get_weights(model)
        x = to_float(data.test.x[:images])
        accuracy = float((torch_adapter.predict(model, x).argmax(1) == data.test.y[:images]).mean())
        timings = {"train": time.perf_counter() - t0}
        print(f"{name}: trained {epochs} epoch on {train} {dataset} images in {timings['train']:.1f} s "
              f"(accuracy on the {images} localisation images {accuracy:.2f})", flush=True)
        sources.append(_artifacts(name, spec, weights, x, data, torch_adapter, model, root, timings))
    return sources


def _artifacts(name: str, spec: Any, weights: dict[str, np.ndarray], x: np.ndarray, data: Any, torch_adapter: Any,
               model: Any, root: Path, timings: dict[str, float]) -> Source:
    from dlcompat.converters.graph import convert_file, converter

    t0 = time.perf_counter()
    torch_floor = measure_noise_floor(torch_adapter, model, spec, weights, x)
    keras = make_adapter("tensorflow", threads=1)
    keras_model = keras.build(spec, seed=0)
    keras.set_weights(keras_model, weights)
    keras_floor = measure_noise_floor(keras, keras_model, spec, weights, x, threads=())
    timings["floors"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    artifacts: dict[str, tuple[Path, str, Any]] = {}
    path = root / f"{name}-torch.onnx"
    facts = torch_adapter.export(model, spec, "onnx", path, variant="dynamo")
    artifacts["onnx (torch)"] = (path, facts["input_layout"], torch_floor)
    native = root / f"{name}{keras.native_suffix}"
    keras.save(keras_model, native)
    path = root / f"{name}-keras.onnx"
    try:
        facts = keras.export(keras_model, spec, "onnx", path)
        artifacts["onnx (keras)"] = (path, facts["input_layout"], keras_floor)
    except Exception as error:  # the benchmark goes on without this artifact and says why
        print(f"{name}: no ONNX from Keras ({type(error).__name__}: {str(error)[:200]})")
    for variant, seed in (("fp32", None), ("fp16", None), ("int8-full", 0), ("int8-full", 1)):
        label = f"tflite {variant.split('-')[0]}" + (f" (calibration {seed})" if seed else "")
        path = root / f"{name}-{variant}-{seed}.tflite"
        calibration = calibration_images(data, 100, seed=seed) if seed is not None else None
        facts = convert_file(converter("keras.tflite"), native, path, spec=spec, variant=variant, threads=1,
                             calibration=calibration)
        artifacts[label] = (path, facts["input_layout"], keras_floor)
    timings["convert"] = time.perf_counter() - t0
    print(f"{name}: floors {timings['floors']:.1f} s, {len(artifacts)} artifacts converted in "
          f"{timings['convert']:.1f} s", flush=True)
    return Source(name, spec, weights, x, artifacts, timings)


def localise_file(source: Source, path: Path, layout: str, floor: Any) -> tuple[Any, Any, Any, float]:
    """(alignment, localisation, diagnosis, seconds) of one artifact file against the source."""
    from dlcompat.runtimes.litert import LiteRTRunner
    from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner

    t0 = time.perf_counter()
    alignment = align_file(path, source.spec)
    runner = OnnxRuntimeRunner(path, input_layout=layout) if path.suffix == ".onnx" else LiteRTRunner(path, threads=1)
    with runner:
        tensors = read_tensors(runner, alignment, source.x)
    reference = forward(source.spec, source.weights, source.x)
    localisation = localise(source.spec, source.weights, source.x, tensors, alignment, floor, reference)
    diagnosis = diagnose(source.spec, source.weights, path, alignment, localisation, tensors, reference[1])
    return alignment, localisation, diagnosis, time.perf_counter() - t0


def honest(sources: list[Source]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every un-injected artifact localised: its verdict, and the quantised floors' measurements."""
    rows, measured = [], {"float16": [], "int8": []}
    for source in sources:
        for label, (path, layout, floor) in source.artifacts.items():
            alignment, loc, _, seconds = localise_file(source, path, layout, floor)
            judged = [e for e in loc.layers if e.exceeds is not None]
            rows.append({"model": source.model, "format": label, "precision": alignment.precision,
                         "judged": len(judged), "first": loc.first_divergent_layer, "seconds": seconds,
                         "max_ratio": max((e.ratio for e in judged if e.ratio is not None), default=0.0)})
            if alignment.precision == "float16":
                measured["float16"].append(_float16_measurement(source, label, loc, floor))
            if alignment.precision == "int8":
                measured["int8"].append({"model": source.model, "format": label,
                                         "steps": {e.name: e.steps for e in judged if e.steps is not None}})
    return rows, measured


def _float16_measurement(source: Source, label: str, loc: Any, floor: Any) -> dict[str, Any]:
    wide = float16_floor(floor, source.spec, source.weights, source.x)
    out = {"model": source.model, "format": label, "to_fp32_floor": {}, "to_fp16_floor": {}, "fp16_over_fp32": {}}
    for e in loc.layers:
        if e.rmse is None or e.name not in floor.floors:
            continue
        out["to_fp32_floor"][e.name] = floor.ratio(e.name, e.rmse)
        out["to_fp16_floor"][e.name] = wide.ratio(e.name, e.rmse)
        out["fp16_over_fp32"][e.name] = wide.floor(e.name) / floor.floor(e.name)
    return out


def injected(sources: list[Source], root: Path) -> list[Row]:
    rows = []
    for source in sources:
        for label, (path, layout, floor) in source.artifacts.items():
            if "calibration 1" in label or label == "onnx (keras)":
                continue  # the honest second calibration and the tf2onnx export measure floors / false alarms only
            honest_alignment = align_file(path, source.spec)
            make = onnx_faults if path.suffix == ".onnx" else tflite_faults
            for kind, layer, expected, edit in make(source.model, label, source.spec, source.weights,
                                                    honest_alignment):
                target = root / f"{source.model}-{label.replace(' ', '_')}-{kind}-{layer}{path.suffix}"
                edit(path, target)
                rows.append(_judge_fault(source, label, kind, layer, expected, target, layout, floor))
                print(_format_row(rows[-1]), flush=True)
    return rows


def _judge_fault(source: Source, label: str, kind: str, layer: str, expected: str, path: Path, layout: str,
                 floor: Any) -> Row:
    try:
        alignment, loc, diagnosis, seconds = localise_file(source, path, layout, floor)
    except Exception as error:  # a fault that breaks the runtime is a crash, reported as such
        return Row(source.model, label, kind, layer, expected, None, (), "crash", False, expected == "crash", 0.0,
                   None, f"{type(error).__name__}: {error}"[:200])
    first = loc.first_divergent_layer
    group = alignment[first].group if first else ()
    ranked = first == layer or layer in group
    return Row(source.model, label, kind, layer, expected, first, tuple(group), diagnosis.fault_type, ranked,
               diagnosis.fault_type == expected, seconds, loc[first].ratio if first else None,
               (diagnosis.evidence or [""])[0][:160])


def _format_row(row: Row) -> str:
    return (f"{row.model:9s} {row.format:24s} {row.kind:20s} {row.injected:11s} {row.first!s:11s} "
            f"{row.found!s:19s} {'right' if row.ranked_first else 'WRONG':5s} "
            f"{'right' if row.type_right else 'WRONG':5s} {row.seconds:6.2f} {row.ratio or math.nan:10.3g}")


def _percent(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100.0 * hits / total:.0f} %" if total else "0/0"


def report(rows: list[Row], honest_rows: list[dict[str, Any]], measured: dict[str, Any], sources: list[Source],
           wall: float) -> dict[str, Any]:
    print("\nhonest (un-injected) artifacts: false alarms")
    for h in honest_rows:
        print(f"  {h['model']:9s} {h['format']:24s} {h['precision']:8s} {h['judged']:3d} layers judged, "
              f"largest ratio {h['max_ratio']:.3g}, first beyond noise: {h['first']}  ({h['seconds']:.2f} s)")
    false_alarms = sum(h["first"] is not None for h in honest_rows)
    kinds = sorted({r.kind for r in rows})
    formats = sorted({(r.model, r.format) for r in rows})
    print(f"\nfaults: {len(rows)} of {len(kinds)} kinds in {len({f for _, f in formats})} formats "
          f"({len(formats)} model x format artifacts)")
    print(f"ranked first: {_percent(sum(r.ranked_first for r in rows), len(rows))}  (target >= 90 %)")
    print(f"type right:   {_percent(sum(r.type_right for r in rows), len(rows))}  (target >= 80 %)")
    print(f"false alarms: {false_alarms} of {len(honest_rows)} un-injected artifacts  (target 0)")
    for model in LIMITS:
        times = [r.seconds for r in rows if r.model == model] + [h["seconds"] for h in honest_rows
                                                                 if h["model"] == model]
        if times:
            print(f"localisation seconds, {model}: max {max(times):.2f}, median {float(np.median(times)):.2f} "
                  f"(limit {LIMITS[model]:.0f} s)")
    for kind in kinds:
        sub = [r for r in rows if r.kind == kind]
        print(f"  {kind:20s} ranked first {_percent(sum(r.ranked_first for r in sub), len(sub)):14s} "
              f"type right {_percent(sum(r.type_right for r in sub), len(sub))}")
    for r in rows:
        if not (r.ranked_first and r.type_right):
            print(f"  miss: {r.model} {r.format} {r.kind} {r.injected}: first {r.first} {r.group}, {r.found}: "
                  f"{r.evidence}")
    quantised = _print_quantised(measured)
    for source in sources:
        print(f"{source.model}: " + ", ".join(f"{k} {v:.1f} s" for k, v in source.timings.items()))
    print(f"wall {wall:.1f} s; load {_load()}; cpus {os.cpu_count()}")
    return {"faults": [asdict(r) for r in rows], "honest": honest_rows, "quantised": quantised,
            "false_alarms": false_alarms, "wall_s": wall}


def _print_quantised(measured: dict[str, Any]) -> dict[str, Any]:
    print("\nfloat16 hops (LiteRT fp16: float16 weights, float32 compute), per layer:")
    for m in measured["float16"]:
        to32, to16, units = (list(m[k].values()) for k in ("to_fp32_floor", "to_fp16_floor", "fp16_over_fp32"))
        print(f"  {m['model']:9s} {m['format']:10s} rmse / fp32 floor: max {max(to32):8.1f} median "
              f"{float(np.median(to32)):8.1f} | rmse / fp16 floor: max {max(to16):.3f} median "
              f"{float(np.median(to16)):.3f} | fp16 floor / fp32 floor: median {float(np.median(units)):.0f}")
    steps = [s for m in measured["int8"] for s in m["steps"].values()]
    print(f"\nint8 hops (full integer), rmse in quantisation steps per aligned tensor "
          f"(well quantised: {WELL_QUANTISED_STEPS:.3f}):")
    for m in measured["int8"]:
        print(f"  {m['model']:9s} {m['format']:26s} " + " ".join(f"{k}={v:.2f}" for k, v in m["steps"].items()))
    largest = max(steps) if steps else math.nan
    print(f"  largest {largest:.3f} steps over {len(steps)} tensors of {len(measured['int8'])} honest conversions "
          f"(the measurement behind INT8_MEASURED_MAX_STEPS = {INT8_MEASURED_MAX_STEPS}); int8 floor in use "
          f"{INT8_FLOOR_STEPS} steps, a tensor exceeds over k = {K_NOISE} x that ({K_NOISE * INT8_FLOOR_STEPS:.2f} "
          f"steps)")
    return {"float16": measured["float16"], "int8": measured["int8"], "int8_largest_steps": largest}


def _load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"load at start {_load()}; cpus {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dlcompat-localisation-") as tmp:
        root = Path(tmp)
        sources = build_sources(args.data_dir, root)
        honest_rows, measured = honest(sources)
        print(f"\n{'model':9s} {'format':24s} {'kind':20s} {'injected':11s} {'first':11s} {'type found':19s} "
              f"{'rank':5s} {'type':5s} {'s':>6s} {'ratio':>10s}")
        rows = injected(sources, root)
        summary = report(rows, honest_rows, measured, sources, time.perf_counter() - start)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
