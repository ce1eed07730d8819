"""Benchmark: choose k of `dlcompat.metrics.noise` (a tensor exceeds noise beyond k x its floor) by measurement.

For LeNet-5 (trained 2 epochs on `digits` with PyTorch) and ResNet-20 (random weights with realistic batch-norm
statistics, on CIFAR-10 test images), in PyTorch and in Keras on TensorFlow, both holding the same weights:

1. each framework's noise floor (`measure_noise_floor`) on the images;
2. benign hops as ratios to that floor (candidate rmse / floor rmse), per layer and for the logits: each honest
   execution of the source itself (<= 1 by construction) and the *other* framework's float32 model on the same
   weights (a benign cross-framework hop);
3. the distribution of the cross-framework ratios (max, p99, median), the k chosen (MARGIN x the max, rounded up
   to a half), and how many of the same hops `torch._dynamo.utils.same`'s fixed multiplier (2, or 3 under 1000
   elements) flags against one fp32 execution's error (its `ref`), with and without its `tol / 10` slack.

Usage: .venv/bin/python benchmarks/noise_floor.py [--data-dir ../shared/data] [--images 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.frameworks.weights

from tests.frameworks.weights import random_weights  # noqa: E402

from dlcompat.data.batching import to_float  # noqa: E402
from dlcompat.data.registry import load_dataset  # noqa: E402
from dlcompat.frameworks.base import TrainSettings  # noqa: E402
from dlcompat.frameworks.registry import make_adapter  # noqa: E402
from dlcompat.metrics.noise import K_NOISE, LOGITS, MARGIN, errors_against, measure_noise_floor, run_execution  # noqa: E402
from dlcompat.zoo.reference import forward  # noqa: E402
from dlcompat.zoo.registry import build_spec  # noqa: E402
from dlcompat.zoo.spec import BatchNorm, Conv2D, Residual  # noqa: E402

FRAMEWORKS = ("pytorch", "tensorflow")


def cases(data_dir: Path, images: int, seed: int):
    digits = load_dataset("digits", data_dir, download=False)
    spec = build_spec("lenet5", digits.input_shape, digits.num_classes)
    torch_adapter = make_adapter("pytorch", 1)
    model = torch_adapter.build(spec, seed=seed)
    t0 = time.perf_counter()
    torch_adapter.train(model, spec, (to_float(digits.train.x), digits.train.y), (to_float(digits.val.x), digits.val.y),
                        TrainSettings(epochs=2, seed=seed))
    acc = float((torch_adapter.predict(model, to_float(digits.test.x)).argmax(1) == digits.test.y).mean())
    print(f"lenet5 trained 2 epochs on digits in PyTorch: {time.perf_counter() - t0:.1f} s, test accuracy {acc:.3f}")
    window = slice(seed * images, (seed + 1) * images)
    yield "lenet5 (digits, trained)", spec, torch_adapter.get_weights(model), to_float(digits.test.x[window])
    cifar = load_dataset("cifar10", data_dir, limit_train=10, limit_test=(seed + 1) * images, download=False)
    spec = build_spec("resnet20", cifar.input_shape, cifar.num_classes)
    yield "resnet20 (cifar10, random)", spec, random_weights(spec, seed=seed), to_float(cifar.test.x[window])


def faults(spec, weights):
    """(name, spec, weights, the layer where it starts) of injected faults the floor must catch."""
    first_conv = next(layer.name for layer in _flat(spec.layers) if isinstance(layer, Conv2D))
    half = {k: v.astype(np.float16).astype(np.float32) if k == f"{first_conv}.weight" else v
            for k, v in weights.items()}
    yield f"{first_conv}.weight rounded to float16", spec, half, first_conv
    if spec.name == "lenet5":
        flipped = dict(weights, **{"conv2.weight": np.ascontiguousarray(weights["conv2.weight"].transpose(0, 1, 3, 2))})
        yield "conv2 kernel transposed (kh <-> kw)", spec, flipped, "conv2"
    else:
        for eps in (1e-3, 1e-5 + 1e-2):
            bad = dataclasses.replace(spec, layers=_with_eps(spec.layers, "s1b1.bn1", eps))
            yield f"s1b1.bn1 eps {eps:g}", bad, weights, "s1b1.bn1"


def _flat(layers):
    for layer in layers:
        yield layer
        yield from _flat(getattr(layer, "body", ()) + tuple(getattr(layer, "shortcut", ()) or ()))


def _with_eps(layers, name, eps):
    out = []
    for layer in layers:
        if isinstance(layer, BatchNorm) and layer.name == name:
            layer = dataclasses.replace(layer, eps=eps)
        elif isinstance(layer, Residual):
            layer = dataclasses.replace(layer, body=_with_eps(layer.body, name, eps),
                                        shortcut=_with_eps(layer.shortcut, name, eps))
        out.append(layer)
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one LeNet-5 training, ResNet-20 draw and image window per seed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    fault_rows = []  # (case, fault, layer, ratio at that layer, first layer over K_NOISE, dynamo flags it)
    rows = []  # (model, source, candidate, layer, ratio, n, dynamo_flag, dynamo_flag_tol)
    record = {"images": args.images, "seeds": args.seeds, "floors": {}}
    every = [(seed, case) for seed in args.seeds for case in cases(args.data_dir, args.images, seed)]
    for seed, (label, spec, weights, x) in every:
        label = f"{label} seed {seed}"
        reference = forward(spec, weights, x)
        adapters, models = {}, {}
        for fw in FRAMEWORKS:
            adapters[fw] = make_adapter(fw, 1)
            models[fw] = adapters[fw].build(spec, seed=0)
            adapters[fw].set_weights(models[fw], weights)
        layers = [n for n in adapters["pytorch"].activations(models["pytorch"], x[:1]) if n in reference[1]]
        layers = [n for n in layers if n in adapters["tensorflow"].activations(models["tensorflow"], x[:1])]
        floors = {}
        for source in FRAMEWORKS:
            t0 = time.perf_counter()
            floor = measure_noise_floor(adapters[source], models[source], spec, weights, x, layers=layers,
                                        reference=reference, seed=seed)
            print(f"\n{label}, source {source}: floor in {time.perf_counter() - t0:.1f} s; executions "
                  f"{floor.method['executions']}; skipped {floor.method['skipped']}")
            record["floors"][f"{label}/{source}"] = floor.to_dict()
            floors[source] = floor
            single = floor.executions[f"batch{len(x)}"]  # dynamo's `ref`: one fp32 execution
            candidates = {name: errs for name, errs in floor.executions.items()}
            for other in FRAMEWORKS:
                if other != source:
                    logits, acts = run_execution(adapters[other], models[other], x, layers)
                    candidates[f"{other} fp32"] = errors_against(reference, logits, acts)
            for cand, errs in candidates.items():
                for layer in [*layers, LOGITS]:
                    e = errs[layer]
                    mult = 3.0 if e.n < 1000 else 2.0
                    rows.append((label, source, cand, layer, floor.ratio(layer, e), e.n,
                                 e.rmse > mult * single[layer].rmse,
                                 e.rmse > mult * single[layer].rmse + 1e-4 / 10))
            worst = max((r for r in rows if r[1] == source and r[0] == label and r[2].endswith("fp32")),
                        key=lambda r: r[4])
            print(f"  worst cross-framework layer: {worst[3]} ratio {worst[4]:.2f}")
            for layer in [*layers, LOGITS]:
                hop = f"{next(f for f in FRAMEWORKS if f != source)} fp32"
                cross = next(r for r in rows if r[:4] == (label, source, hop, layer))
                print(f"  {layer:>12}  floor rmse {floor.floor(layer):.3e}  cross ratio {cross[4]:5.2f}")

        for fault, fault_spec, fault_weights, layer in faults(spec, weights):
            torch = adapters["pytorch"]
            model = torch.build(fault_spec, seed=0)
            torch.set_weights(model, fault_weights)
            errs = errors_against(reference, *run_execution(torch, model, x, layers))
            ratio, first = floors["pytorch"].ratio(layer, errs[layer]), floors["pytorch"].first_exceeding(errs)
            one = floors["pytorch"].executions[f"batch{len(x)}"][layer].rmse
            dynamo = errs[layer].rmse > 2 * one + 1e-4 / 10
            fault_rows.append((label, fault, layer, ratio, first, dynamo))
            print(f"  fault {fault}: ratio {ratio:.3g} at {layer}; first layer over k={K_NOISE}: {first}; "
                  f"dynamo's same (tol=1e-4) flags it: {dynamo}")

    if fault_rows:
        print(f"\ninjected faults (PyTorch floors): smallest ratio at the faulty layer "
              f"{min(r[3] for r in fault_rows):.3g}; first exceeding layer = the faulty one in "
              f"{sum(r[2] == r[4] for r in fault_rows)}/{len(fault_rows)}; dynamo's same (tol=1e-4) flags "
              f"{sum(r[5] for r in fault_rows)}/{len(fault_rows)} at that layer")
        keys = ("case", "fault", "layer", "ratio", "first_exceeding", "dynamo_flags")
        record["faults"] = [dict(zip(keys, r, strict=True)) for r in fault_rows]
    cross = np.array([r[4] for r in rows if r[2].endswith("fp32")])
    own = np.array([r[4] for r in rows if not r[2].endswith("fp32")])
    for model in ("lenet5", "resnet20"):
        for source in FRAMEWORKS:
            part = [r[4] for r in rows if r[0].startswith(model) and r[1] == source and r[2].endswith("fp32")]
            print(f"  {model:>8} against the {source:>10} floor: max {max(part):.3f}  median {np.median(part):.3f}"
                  f"  (n={len(part)})")
    k_min = float(cross.max())
    k = math.ceil(MARGIN * k_min * 2) / 2
    print(f"\nhonest re-executions / own floor: max {own.max():.3f} (<= 1 by construction), n={len(own)}")
    print(f"cross-framework fp32 hops / floor: n={len(cross)} max {cross.max():.3f}  p99 {np.percentile(cross, 99):.3f}"
          f"  p90 {np.percentile(cross, 90):.3f}  median {np.median(cross):.3f}")
    print(f"smallest k with no benign hop flagged: {k_min:.3f}; k = ceil-to-0.5({MARGIN} x {k_min:.3f}) = {k}")
    hops = [r for r in rows if r[2].endswith("fp32")]
    print(f"torch._dynamo.utils.same (multiplier 2, 3 under 1000 elements, ref = one fp32 execution): flags "
          f"{sum(r[6] for r in hops)}/{len(hops)} benign cross-framework hops without tol/10, "
          f"{sum(r[7] for r in hops)}/{len(hops)} with tol=1e-4")
    record.update(k_min=k_min, k=k, margin=MARGIN, cross_max=float(cross.max()),
                  cross_p99=float(np.percentile(cross, 99)), cross_median=float(np.median(cross)),
                  dynamo_flags=int(sum(r[6] for r in hops)), dynamo_flags_tol=int(sum(r[7] for r in hops)),
                  hops=len(hops))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
